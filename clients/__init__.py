"""Reference clients: what the Flutter app (and other first-party clients) do, in Python."""
