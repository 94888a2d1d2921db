"""The web server's settings, read by gunicorn from the working directory: the Dockerfile,
`make run`, the tests' server and the benchmarks all run the same server and add only
where it listens and how many processes it runs.

The ASGI worker serves the async views (the synchronous Segmind-compatible call waits
minutes without holding a worker) beside the ordinary ones.
"""

worker_class = "asgi"
# gunicorn 27 opens a control socket in $HOME by default; nothing here uses it.
control_socket_disable = True
# TLS ends at the proxy in front, which sets X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = "*"
graceful_timeout = 30
# Idle keep-alive connections stay open longer than a load balancer keeps its own (60 s on
# most): the balancer, not the app, closes them, and never reuses one the app just closed
# (a 502 for the customer). gunicorn's default is 2 s.
keepalive = 75
