"""The detail jobs' endpoints: submit, status, results, cancel and the data-lake watermark, as HTTP
answers. The jobs themselves (states, timing, result pages, slots) live in jobs.py (`JobStore`)."""

from __future__ import annotations

import re
from typing import Any

from .clock import iso_ms
from .jobs import JobStore
from .messages import Request, Response


class JobEndpoints:
    """The handlers of `.../details/jobs...`; each takes the request and its route's match."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def submit_job(self, request: Request, _: re.Match[str]) -> Response:
        job = self.jobs.submit(request.json())
        return Response(202, {"jobId": job.job_id})

    def job_status(self, _: Request, match: re.Match[str]) -> dict[str, Any]:
        return self.jobs.status(match["job"])

    def job_results(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        params = request.params
        cursor = (params.get("cursor") or [None])[0]
        page_size = (params.get("pageSize") or [None])[0]
        return self.jobs.results(match["job"], cursor, page_size)

    def cancel_job(self, _: Request, match: re.Match[str]) -> Response:
        self.jobs.cancel(match["job"])
        return Response(204)

    def availability(self, _: Request, __: re.Match[str]) -> dict[str, Any]:
        return {"dataAvailabilityDate": iso_ms(self.jobs.watermark_ms())}
