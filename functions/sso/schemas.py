"""Models of the sign-in center's endpoints (CONTRACT §2) for /openapi.json.

Most of these endpoints are browser redirects and OAuth/OIDC protocol endpoints whose parameters and error shapes
the RFCs fix (`{"error","error_description"}` at the token endpoint), so the routes check their parameters
themselves; these models document them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.schemas import Body, Query

Provider = Literal["google", "facebook"]


class NextQuery(Query):
    next: str | None = Field(None, description="same-origin path or a registered sibling redirect URI")


class CallbackQuery(Query):
    state: str | None = None
    code: str | None = None
    error: str | None = Field(None, description="set by the provider when consent was denied")


class AuthorizeQuery(Query):
    client_id: str
    redirect_uri: str
    response_type: Literal["code"]
    scope: str | None = Field(None, description="space-separated; openid profile email")
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = Field(None, description="PKCE; required for public clients")
    code_challenge_method: Literal["S256"] | None = None
    prompt: Literal["none", "login"] | None = None


class TokenRequest(Body):
    """Form parameters of the token endpoint (RFC 6749 §4.1.3, §6); which ones a grant needs, it checks."""

    grant_type: Literal["authorization_code", "refresh_token"]
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    refresh_token: str | None = None
    client_id: str | None = Field(None, description="pcloud for phones; siblings may use HTTP Basic instead")
    client_secret: str | None = None


class Tokens(BaseModel):
    """Tokens (the refresh token rotates on every use)."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    id_token: str | None = None
    scope: str | None = None


class OAuthProblem(BaseModel):
    """An OAuth error (RFC 6749 §5.2)."""

    error: str = Field(description="invalid_grant, invalid_client, invalid_request, unsupported_grant_type")
    error_description: str | None = None


class SessionUser(BaseModel):
    id: str
    email: str
    name: str | None


class SessionInfo(BaseModel):
    """The signed-in user and the CSRF token for cookie-authorised writes."""

    user: SessionUser
    csrf_token: str
    expires_at: str


class UserInfo(BaseModel):
    """Claims about the token's user."""

    model_config = ConfigDict(extra="allow")
    sub: str
    email: str
    email_verified: bool
    name: str
    role: Literal["admin", "member"]


class Discovery(BaseModel):
    """OpenID Provider metadata."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class Jwks(BaseModel):
    """Public signing keys (current and previous)."""

    keys: list[dict[str, Any]]


class LogoutQuery(Query):
    id_token_hint: str | None = None
    client_id: str | None = None
    post_logout_redirect_uri: str | None = Field(None, description="must be registered for the client")
    state: str | None = Field(None, description="echoed on the redirect")
    next: str | None = Field(None, description="portal page to land on when no sibling asked")


class RevokeRequest(Body):
    """Form parameters of token revocation (RFC 7009): 200 whether or not the token was known."""

    token: str
    token_type_hint: Literal["refresh_token", "access_token"] | None = None
    client_id: str | None = None
    client_secret: str | None = None
