-- PUT a 1 MiB body on every request (built once, reused): the streamed-upload scenario.
wrk.method = "PUT"
wrk.body = string.rep("x", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
