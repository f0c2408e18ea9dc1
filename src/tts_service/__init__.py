"""tts-service: a concurrency-safe, streaming text-to-speech server built on Piper."""

__version__ = "0.1.0"
