"""The Photos UI app: static pages that the browser runs against PCloud's GraphQL (§7) and search (§9) with the
SSO cookie and the session's CSRF token. The server side only serves files."""
