"""Run reports and Data Docs in Airflow's own API server, behind its login: an Airflow plugin.

A FastAPI app mounted at `/retrain` (`retrain.results.PATH`) serves what `retrain.results.find`
allows, and only to a request with a valid Airflow login (the UI's session cookie or a bearer
token) whose user may read the runs of the dataset's DAG, as Airflow's auth manager decides.
Without a login a browser is sent to Airflow's login page and back; anything else is refused.
An unknown path and a path outside the results are the same 404, with no detail. Two external
views put the results in the UI: "Retrain results" under Browse, and a "Results" tab on each
dataset's DAGs. The plugin is registered through the package's `airflow.plugins` entry point.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrain import results
from retrain.airflow import dag_ids

NOT_FOUND = HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
# A served page runs in a sandbox of its own origin: Data Docs load scripts from CDNs, and
# nothing they run may act on Airflow's API as the person viewing them.
SANDBOXED = HEADERS | {"Content-Security-Policy": "sandbox allow-scripts allow-popups"}

app = FastAPI(title="retrain results", docs_url=None, redoc_url=None, openapi_url=None)


def _readable(user: Any) -> list[str]:
    """The datasets whose training DAG's runs `user` may read, by name."""
    from retrain.spec import load_all_specs

    manager = get_auth_manager()
    return sorted(
        name
        for name in load_all_specs({})
        if manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_ids(name)[0]),
            user=user,
        )  # fmt: skip
    )


@app.exception_handler(StarletteHTTPException)  # FastAPI's, and the router's own 404
def _refused(request: Request, err: StarletteHTTPException) -> Response:
    """A browser without a valid login goes to Airflow's login page, and back here after it."""
    browser = "text/html" in request.headers.get("accept", "")
    no_login = err.status_code == status.HTTP_401_UNAUTHORIZED or err.detail == "Invalid JWT token"
    if no_login and browser:
        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)))
    return JSONResponse({"detail": err.detail}, err.status_code, headers=err.headers)


@app.get("/", response_class=HTMLResponse)
def index(user: GetUserDep) -> HTMLResponse:
    """Every dataset's latest runs that the user may read."""
    return HTMLResponse(results.index_html(_readable(user)), headers=HEADERS)


@app.get("/dags/{dag_id}", response_class=HTMLResponse)
def dag_results(dag_id: str, user: GetUserDep) -> HTMLResponse:
    """The latest runs of the dataset a DAG belongs to (the DAG page's "Results" tab)."""
    shown = [name for name in _readable(user) if dag_id in dag_ids(name)]
    return HTMLResponse(results.index_html(shown), headers=HEADERS)


@app.get("/{tree}/{path:path}")
def result(tree: str, path: str, request: Request, user: GetUserDep) -> Response:
    """A run's report or validation file, or a Data Docs page, if the user may read the runs
    of the dataset's DAG."""
    relative = f"{tree}/{path}"
    dataset = results.dataset_of(relative)
    if dataset is None:
        raise NOT_FOUND
    requires_access_dag("GET", DagAccessEntity.RUN, dag_ids(dataset)[0])(request, user)
    found = results.find(relative)
    if found is None:
        raise NOT_FOUND
    content, media_type = found
    return Response(content, media_type=media_type, headers=SANDBOXED)


class RetrainResults(AirflowPlugin):
    """Serves retrain's results in the API server and links them from the UI."""

    name = "retrain_results"
    fastapi_apps = [{"app": app, "url_prefix": results.PATH, "name": "retrain results"}]
    external_views = [
        {
            "name": "Retrain results",
            "href": f"{results.PATH}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "retrain-results",
        },
        {
            "name": "Results",
            "href": f"{results.PATH}/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "retrain-dag-results",
        },
    ]
