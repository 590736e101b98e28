from tests.worker.fixtures import celery_worker

__all__ = ["celery_worker"]
