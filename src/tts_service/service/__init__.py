"""The service every transport talks to: validate a request, phonemize it off the event
loop, admit it to the scheduler. HTTP, WebSocket, OpenAI and Wyoming all go through here.

`core` holds the service itself; `requests` what a transport hands in and holds;
`options` how a request's values and the voice's defaults become synthesis options;
`checks` what a request is refused for before any synthesis."""

from tts_service.scheduling.jobs import Chunk
from tts_service.service.core import TTSService
from tts_service.service.requests import Admitted, OpenStream, SpeechRequest

__all__ = ["Admitted", "Chunk", "OpenStream", "SpeechRequest", "TTSService"]
