"""What a handler does with `asyncio.current_task()`, shared by the raw ASGI test app
(tests/apps/asgi_app.py, /t/task/CASE) and the flask-restful native app
(tests/apps_api/native_app.py, /task/CASE), so both paths through the server run the same
code (tests/test_task_api.py).

`await run_case(case, rid, state)` runs one case inside the request's task and returns a
JSON-able dict for the response.  What happens after the handler has ended (done callbacks,
shielded work) is written to `state[rid]` (a dict; the test reads it through the app's
/__state__ endpoint).
"""
import asyncio
import contextvars

REQUEST_VAR = contextvars.ContextVar("task_cases_request", default=None)


def outcome(call):
    """What calling `call()` gives, as text: "value:<repr>" or "raises:<type>:<args>"."""
    try:
        return "value:" + repr(call())
    except BaseException as exc:  # (CancelledError included: that is what is checked)
        return "raises:%s:%s" % (type(exc).__name__, ",".join(map(str, exc.args)))


def describe_done(task):
    """The task-level answers a done callback reads."""
    return {"done": task.done(), "cancelled": task.cancelled(),
            "result": outcome(task.result), "exception": outcome(task.exception),
            "var": REQUEST_VAR.get(), "current_task_is_none": asyncio.current_task() is None}


async def case_timeout(rid, record):
    """An asyncio.timeout() that expires, then one that does not."""
    res = {}
    try:
        async with asyncio.timeout(0.02):
            await asyncio.sleep(30)
        res["expiring"] = "not expired"
    except TimeoutError:
        res["expiring"] = "TimeoutError"
    async with asyncio.timeout(30):
        await asyncio.sleep(0.001)
        res["not_expiring"] = "finished"
    res["cancelling"] = asyncio.current_task().cancelling()
    await asyncio.sleep(0.001)  # the handler is not left cancelled
    res["after"] = "ran"
    return res


async def case_taskgroup(rid, record):
    """A child that fails cancels its siblings and the group's body; the ExceptionGroup
    reaches the handler, which goes on."""
    cancelled = []

    async def sibling(i):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def failing():
        await asyncio.sleep(0.005)
        raise ValueError("child failed")

    res = {}
    body = "not cancelled"
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sibling(1))
            tg.create_task(sibling(2))
            tg.create_task(failing())
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                body = "cancelled"
                raise
        res["group"] = "no error"
    except* ValueError as eg:
        res["group"] = [f"{type(e).__name__}: {e}" for e in eg.exceptions]
    res["body"] = body
    res["siblings_cancelled"] = sorted(cancelled)
    res["cancelling"] = asyncio.current_task().cancelling()
    await asyncio.sleep(0.001)
    res["after"] = "ran"
    return res


async def case_shield(rid, record):
    """A timeout cancels the handler's await of shielded work; the work itself goes on and
    finishes after the handler has answered."""
    async def work():
        await asyncio.sleep(0.05)
        record({"shielded": "finished"})

    res = {}
    inner = asyncio.ensure_future(work())
    try:
        async with asyncio.timeout(0.005):
            await asyncio.shield(inner)
        res["timeout"] = "not expired"
    except TimeoutError:
        res["timeout"] = "TimeoutError"
    res["inner_done_at_timeout"] = inner.done()
    res["cancelling"] = asyncio.current_task().cancelling()
    return res


async def case_done_callback(rid, record):
    """Done callbacks run after the handler ends, in their context; a removed one does not."""
    task = asyncio.current_task()
    REQUEST_VAR.set("request " + rid)
    seen = {}

    def first(t):
        seen["first"] = describe_done(t)
        seen["first"]["same_task"] = t is task

    def in_context(t):
        seen["in_context"] = REQUEST_VAR.get()
        record(dict(seen))

    def removed(t):
        seen["removed_ran"] = True

    ctx = contextvars.copy_context()
    ctx.run(REQUEST_VAR.set, "given context")
    task.add_done_callback(first)
    task.add_done_callback(removed)
    res = {"removed_count": task.remove_done_callback(removed)}
    task.add_done_callback(in_context, context=ctx)
    await asyncio.sleep(0.001)
    res["done_inside"] = task.done()
    res["cancelled_inside"] = task.cancelled()
    res["result_inside"] = outcome(task.result)
    return res


async def case_cancel_msg(rid, record):
    """cancel("why") while suspended and cancel("now") before the next suspension: the
    messages reach the CancelledError; cancelling()/uncancel() count."""
    task = asyncio.current_task()
    res = {"cancelling": []}

    async def cancelled_with(awaitable):
        try:
            await awaitable
            return "not cancelled"
        except asyncio.CancelledError as exc:
            res["cancelling"].append(task.cancelling())
            task.uncancel()
            return list(exc.args)

    asyncio.get_running_loop().call_later(0.005, task.cancel, "why")
    res["suspended"] = await cancelled_with(asyncio.sleep(30))
    res["cancel_returned"] = task.cancel("now")
    res["before_suspension"] = await cancelled_with(asyncio.sleep(0))
    res["cancelling_after"] = task.cancelling()
    return res


async def case_name(rid, record):
    task = asyncio.current_task()
    res = {"default_is_str": isinstance(task.get_name(), str)}
    task.set_name(("request", rid))
    res["name"] = task.get_name()
    return res


async def case_cancelled(rid, record):
    """The handler ends by cancellation: done callbacks see cancelled() True and the message
    in result()/exception(); nothing is answered (the client sees the connection close)."""
    task = asyncio.current_task()
    task.add_done_callback(lambda t: record(describe_done(t)))
    task.cancel("handler cancelled")
    await asyncio.sleep(30)
    return {"never": True}


async def case_fails(rid, record):
    """The handler ends by an exception: done callbacks see it in exception(); what runs
    after them no longer does (a Task keeps it for good, the exchange lets it go)."""
    task = asyncio.current_task()

    def done(t):
        seen = describe_done(t)
        asyncio.get_running_loop().call_soon(
            lambda: record(dict(seen, later=outcome(t.exception))))

    task.add_done_callback(done)
    await asyncio.sleep(0)
    raise KeyError("handler failed " + rid)


CASES = {
    "timeout": case_timeout,
    "taskgroup": case_taskgroup,
    "shield": case_shield,
    "done-callback": case_done_callback,
    "cancel-msg": case_cancel_msg,
    "name": case_name,
    "cancelled": case_cancelled,
    "fails": case_fails,
}


async def run_case(case, rid, state):
    def record(value):
        state[rid] = value

    return await CASES[case](rid, record)
