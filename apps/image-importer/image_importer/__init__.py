"""The image importer app (namespace `photos`, CONTRACT §10): one photos.Image per picture under the user's folders."""
