"""The dashboard's pages and forms, under ``/dashboard``.

Pages read in one short transaction; a form changes things through the same domain calls
as the API (``lifecycle.retry``/``abort``, ``subscription_states``), one unit of work, and
answers a refusal (the API's 409) as a message on the page. Everything a page is asked
through the query string is read leniently: what it cannot use is named, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import FileResponse, RedirectResponse, Response

from api.errors import ApiError
from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.errors import CopyStateError, NotFoundError
from copying.subscriptions.subscription_states import SubscriptionStateError
from dashboard import bulk_jobs, charts, copies, failures, overview, sessions, subscriptions
from dashboard.rendering import render
from dashboard.sessions import CsrfRefused, SignInRequired, Viewer
from models import BulkAction, CopyStatus, SubscriptionStatus, db, utcnow

log = structlog.get_logger("ordercopy.dashboard")
STATIC = Path(__file__).with_name("static")
STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
#: A form's body is a few fields; anything larger is not one of ours.
MAX_FORM_BYTES = 16 * 1024


def _publish(copy_ids: Sequence[str]) -> None:
    from worker.publisher import publish

    publish(copy_ids)


class DashboardRoute(APIRoute):
    """Answers the dashboard's exceptions as pages: sign in again, a refused form, an API
    key refused, or (logged) our own failure: never the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as needed:
                target = {"next": needed.next_url, **({"expired": "1"} if needed.expired else {})}
                response = RedirectResponse(f"/dashboard/sign-in?{urlencode(target)}", 303)
                if sessions.COOKIE in request.cookies:  # expired or no longer valid
                    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
                return response
            except CsrfRefused:
                return _message(
                    403,
                    "Form refused",
                    "The form did not carry this session's CSRF token. Reload the page and "
                    "send it again.",
                )
            except ApiError as error:
                return _message(error.status, "Not allowed", error.detail)
            except Exception:
                log.exception("dashboard_crash", path=request.url.path)
                return _message(500, "Something went wrong", "It was logged; try again.")

        return answer


def _message(status: int, title: str, text: str, viewer: Viewer | None = None) -> Response:
    return render("message.html", status, title=title, text=text, viewer=viewer)


def _page_url(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def who(request: Request) -> Viewer:
    """The viewer (a dependency; sign-in required otherwise)."""
    next_url = _page_url(request) if request.method == "GET" else "/dashboard"
    return sessions.viewer(
        request.headers.get("authorization"), request.cookies.get(sessions.COOKIE), next_url
    )


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (URL-encoded; the last of a repeated name)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _checked(request: Request, fields: dict[str, str]) -> Viewer:
    viewer = who(request)
    sessions.check_csrf(viewer, fields.get("csrf"))
    return viewer


def _now() -> datetime:
    return utcnow()


def router() -> APIRouter:
    r = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)

    @r.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return _message(404, "Not found", f"no file {name}")
        return FileResponse(
            STATIC / name,
            media_type=STATIC_FILES[name],
            headers={"Cache-Control": "max-age=300"},
        )

    # --- signing in and out ------------------------------------------------------------

    @r.get("/sign-in")
    def sign_in_page(request: Request) -> Response:
        return _sign_in(request, request.query_params.get("next"), None, 200)

    @r.post("/sign-in")
    def sign_in(request: Request, fields: dict[str, str] = Depends(form)) -> Response:  # noqa: B008
        next_url = sessions.safe_next(fields.get("next"))
        expected = request.cookies.get(sessions.SIGN_IN_COOKIE)
        if not expected or fields.get("csrf") != expected:
            return _sign_in(request, next_url, "The form expired: send it again.", 403)
        try:
            key = sessions.sign_in(fields.get("api_key", ""))
        except ApiError as error:
            if error.status != 401:
                raise
            return _sign_in(request, next_url, "That API key is unknown or revoked.", 401)
        response = RedirectResponse(next_url, 303)
        response.set_cookie(
            sessions.COOKIE,
            sessions.session_cookie(key),
            max_age=int(sessions.LIFETIME.total_seconds()),
            path=sessions.PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(sessions.SIGN_IN_COOKIE, path=sessions.PATH)
        return response

    @r.post("/sign-out")
    def sign_out(request: Request, fields: dict[str, str] = Depends(form)) -> Response:  # noqa: B008
        _checked(request, fields)
        response = RedirectResponse("/dashboard/sign-in?signed_out=1", 303)
        response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
        return response

    # --- overview ----------------------------------------------------------------------

    @r.get("")
    def overview_page(viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        now = _now()
        with db.sessions().begin() as session:
            seen = overview.overview(session, viewer.mode, now)
        return render(
            "overview.html",
            viewer=viewer,
            now=now,
            seen=seen,
            minutes_chart=charts.line_chart(seen.minutes, "Copies per minute, last hour"),
            hours_chart=charts.line_chart(seen.hours, "Copies per hour, last 7 days"),
            section="overview",
        )

    # --- copies ------------------------------------------------------------------------

    @r.get("/copies")
    def copies_page(request: Request, viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        query = copies.parse(request.query_params)
        with db.sessions().begin() as session:
            rows, more = copies.page(session, query, viewer.mode)
        return render(
            "copies.html",
            viewer=viewer,
            query=query,
            rows=rows,
            more=more,
            statuses=list(CopyStatus),
            error_keys=copies.ERROR_KEYS,
            section="copies",
        )

    def copy_page(viewer: Viewer, copy_id: str, notice: str | None, status: int) -> Response:
        with db.sessions().begin() as session:
            found = copies.detail(session, copy_id, viewer.mode)
            if found is None:
                return _message(
                    404, "Not found", f"No copy {copy_id} in {viewer.mode} mode.", viewer
                )
            return render(
                "copy.html",
                status,
                viewer=viewer,
                detail=found,
                copy=found.copy,
                notice=notice,
                section="copies",
            )

    @r.get("/copies/{copy_id}")
    def copy_detail(
        copy_id: str,
        request: Request,
        viewer: Viewer = Depends(who),  # noqa: B008
    ) -> Response:
        notice = {
            "retried": "Retried: the copy is pending and will run shortly.",
            "aborted": "Aborted.",
        }
        return copy_page(viewer, copy_id, notice.get(request.query_params.get("notice", "")), 200)

    @r.post("/copies/{copy_id}/{action}")
    def copy_action(
        copy_id: str,
        action: str,
        request: Request,
        fields: dict[str, str] = Depends(form),  # noqa: B008
    ) -> Response:
        viewer = _checked(request, fields)
        change = {"retry": lifecycle.retry, "abort": lifecycle.abort}.get(action)
        if not copies.is_id(copy_id):
            return _message(404, "Not found", f"No copy {copy_id} in {viewer.mode} mode.", viewer)
        if change is None:
            return _message(404, "Not found", f"No action {action!r} on copies.", viewer)
        try:
            with unit_of_work(db.sessions(), _publish) as session:
                change(session, copy_id, viewer.mode, by=viewer.by)
        except NotFoundError:
            return _message(404, "Not found", f"No copy {copy_id} in {viewer.mode} mode.", viewer)
        except CopyStateError as refused:
            return copy_page(viewer, copy_id, f"Not {action}ed: {refused}", 409)
        done = "retried" if action == "retry" else "aborted"
        return RedirectResponse(f"/dashboard/copies/{quote(copy_id)}?notice={done}", 303)

    @r.get("/orders/{order_id}")
    def order_page(order_id: str, viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        with db.sessions().begin() as session:
            view = copies.order_view(session, order_id, viewer.mode)
            if view is None:
                return _message(
                    404, "Not found", f"No order {order_id} in {viewer.mode} mode.", viewer
                )
            related = copies.copies_of_order(session, order_id, viewer.mode)
            return render("order.html", viewer=viewer, view=view, related=related, section="copies")

    # --- failures and bulk actions -----------------------------------------------------

    @r.get("/failures")
    def failures_page(viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        with db.sessions().begin() as session:
            found = failures.groups(session, viewer.mode)
            jobs = bulk_jobs.recent(session, viewer.mode)
        return render(
            "failures.html",
            viewer=viewer,
            groups=found,
            jobs=jobs,
            now=_now(),
            stalled=bulk_jobs.stalled,
            section="failures",
        )

    @r.get("/failures/group")
    def group_page(request: Request, viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        key = request.query_params.get("key", "")
        message = request.query_params.get("message", "")
        action = request.query_params.get("action", "")
        with db.sessions().begin() as session:
            found = failures.group(session, viewer.mode, key, message)
        chosen = {"retry": found.failed_ids, "abort": found.pending_ids}.get(action)
        return render(
            "group.html",
            viewer=viewer,
            group=found,
            action=action if chosen is not None else "",
            chosen=chosen or [],
            section="failures",
        )

    @r.post("/bulk-jobs")
    def start_bulk_job(request: Request, fields: dict[str, str] = Depends(form)) -> Response:  # noqa: B008
        viewer = _checked(request, fields)
        key, message = fields.get("key", ""), fields.get("message", "")
        try:
            action = BulkAction(fields.get("action", ""))
        except ValueError:
            return _message(400, "Unknown action", "Bulk actions are retry and abort.", viewer)
        with db.sessions().begin() as session:
            found = failures.group(session, viewer.mode, key, message)
        chosen = found.failed_ids if action is BulkAction.RETRY else found.pending_ids
        if not chosen:
            return render(
                "group.html",
                200,
                viewer=viewer,
                group=found,
                action=action.value,
                chosen=[],
                notice=f"No copies to {action.value}: nothing was changed.",
                section="failures",
            )
        job_id = bulk_jobs.start(
            db.sessions(),
            mode=viewer.mode,
            action=action,
            copy_ids=chosen,
            selection=f"{key}: {message}",
            by=viewer.by,
            publish=_publish,
        )
        return RedirectResponse(f"/dashboard/bulk-jobs/{job_id}", 303)

    @r.get("/bulk-jobs/{job_id}")
    def bulk_job_page(job_id: str, viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        with db.sessions().begin() as session:
            job = bulk_jobs.load(session, job_id, viewer.mode)
            if job is None:
                return _message(
                    404, "Not found", f"No bulk job {job_id} in {viewer.mode} mode.", viewer
                )
            now = _now()
            return render(
                "bulk_job.html",
                viewer=viewer,
                job=job,
                stalled=bulk_jobs.stalled(job, now),
                section="failures",
            )

    # --- subscriptions -----------------------------------------------------------------

    @r.get("/subscriptions")
    def subscriptions_page(request: Request, viewer: Viewer = Depends(who)) -> Response:  # noqa: B008
        status = request.query_params.get("status") or None
        raw_page = request.query_params.get("page", "1")
        number = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) <= 10_000 else 1
        with db.sessions().begin() as session:
            rows, more = subscriptions.page(session, viewer.mode, status, number)
        return render(
            "subscriptions.html",
            viewer=viewer,
            rows=rows,
            more=more,
            page=number,
            status=status,
            statuses=list(SubscriptionStatus),
            section="subscriptions",
        )

    def subscription_page(
        viewer: Viewer, subscription_id: str, notice: str | None, status: int
    ) -> Response:
        with db.sessions().begin() as session:
            found = subscriptions.load(session, subscription_id, viewer.mode)
            if found is None:
                return _message(
                    404,
                    "Not found",
                    f"No subscription {subscription_id} in {viewer.mode} mode.",
                    viewer,
                )
            return render(
                "subscription.html",
                status,
                viewer=viewer,
                subscription=found,
                fields=subscriptions.fields(found),
                renewals=subscriptions.renewals(session, found.id, viewer.mode),
                triggers=list(subscriptions.TRIGGERS),
                notice=notice,
                section="subscriptions",
            )

    @r.get("/subscriptions/{subscription_id}")
    def subscription_detail(
        subscription_id: str,
        request: Request,
        viewer: Viewer = Depends(who),  # noqa: B008
    ) -> Response:
        done = request.query_params.get("done", "")
        notice = f"Done: {done}." if done in subscriptions.TRIGGERS else None
        return subscription_page(viewer, subscription_id, notice, 200)

    @r.post("/subscriptions/{subscription_id}/{trigger}")
    def subscription_trigger(
        subscription_id: str,
        trigger: str,
        request: Request,
        fields: dict[str, str] = Depends(form),  # noqa: B008
    ) -> Response:
        viewer = _checked(request, fields)
        move = subscriptions.TRIGGERS.get(trigger)
        if move is None:
            return _message(404, "Not found", f"No trigger {trigger!r} on subscriptions.", viewer)
        try:
            with unit_of_work(db.sessions(), _publish) as session:
                found = subscriptions.load(session, subscription_id, viewer.mode, lock=True)
                if found is None:
                    raise NotFoundError(subscription_id)
                move(session, found, utcnow())
        except NotFoundError:
            return _message(
                404,
                "Not found",
                f"No subscription {subscription_id} in {viewer.mode} mode.",
                viewer,
            )
        except (SubscriptionStateError, ValueError) as refused:
            return subscription_page(viewer, subscription_id, f"Not done: {refused}", 409)
        return RedirectResponse(
            f"/dashboard/subscriptions/{quote(subscription_id)}?done={trigger}", 303
        )

    return r


def _sign_in(request: Request, next_url: str | None, problem: str | None, status: int) -> Response:
    token = request.cookies.get(sessions.SIGN_IN_COOKIE) or _new_token()
    response = render(
        "sign_in.html",
        status,
        viewer=None,
        next_url=sessions.safe_next(next_url),
        expired=request.query_params.get("expired") == "1",
        signed_out=request.query_params.get("signed_out") == "1",
        problem=problem,
        csrf=token,
    )
    response.set_cookie(
        sessions.SIGN_IN_COOKIE,
        token,
        max_age=3600,
        path=sessions.PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def _new_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)
