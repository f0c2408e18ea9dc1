"""The service on Ray Serve: many machines, one address (the optional `ray` extra).

Each Serve replica runs today's whole service (voices, scheduler, the same FastAPI app);
Serve's proxy routes every request to a replica with room, queues a bounded number when
all are full, answers 503 past that, and scales the replicas on ongoing requests.

- `plan`: Serve's options derived from the service's settings (pure, no Ray import)
- `health`: a replica's health check from its scheduler's state (pure)
- `proxy`: JSON error bodies for the answers Serve's proxy gives itself (no Ray import)
- `deployment`: the Serve deployment class and the application builder (imports Ray)
- `launch`: `tts-service serve --ray` (imports Ray)
"""
