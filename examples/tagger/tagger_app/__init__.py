"""The tagger example app."""
