"""PCloud push: outbox events become FCM messages, sent by an rq worker (CONTRACT §6)."""
