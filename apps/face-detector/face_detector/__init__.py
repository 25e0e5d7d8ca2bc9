"""The face detector app (namespace `faces`, CONTRACT §10): faces in photos.Image, grouped into people."""
