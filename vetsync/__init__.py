"""VetSync. The Celery app loads with Django (``vetsync.apps``), not on import: ``vetsync.pims``
must import without Django or Celery."""
