"""The demo world that ``manage.py seed_demo`` creates: two clinics, a login per role,
clients, pets and store customers, the pharmacy's catalogue, and prescriptions, Rx requests
and orders in every state. It lives in the top app layer because it touches every app.

Riverside (ezyVet) takes its first copy from an in-process emulator built like the one
``scripts/run.sh`` serves (same size and seed, so the same records): its prescriptions are for
pets ezyVet knows, and the Celery worker delivers them to the running emulator."""
