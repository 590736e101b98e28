from tests.worker.fixtures import celery_worker, ray_head, runs_worker

__all__ = ["celery_worker", "ray_head", "runs_worker"]
