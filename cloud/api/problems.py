"""Every error as an RFC 9457 problem (``application/problem+json``): one shape to parse.

``type`` stays ``about:blank`` (the status says it all) so ``title`` is the HTTP reason phrase;
``detail`` says what went wrong for this request, and validation errors add ``errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.errors import ConflictError, NotFoundError
from cloud.services.errors import GoneError, InvalidRequestError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] | None = None


def problem_response(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, errors: Any = None
) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem bodies for ``statuses``."""
    return {
        s: {
            "model": Problem,
            "description": HTTPStatus(s).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    return problem_response(422, "the request is not valid", errors=errors)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, str(exc))


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return problem_response(409, str(exc))


async def _gone(_request: Request, exc: Exception) -> JSONResponse:
    return problem_response(410, str(exc))


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequestError)
    errors = [{"loc": list(exc.loc), "msg": str(exc), "type": "value_error"}] if exc.loc else None
    return problem_response(422, str(exc), errors=errors)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in the API", exc_info=exc)
    return problem_response(500, "internal error; see the hub's log")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(InvalidRequestError, _invalid)
    app.add_exception_handler(GoneError, _gone)
    app.add_exception_handler(Exception, _unexpected)
