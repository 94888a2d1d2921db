"""`python manage.py fake_segmind [--host 127.0.0.1] [--port 8765]`: the fake upstream.

Development and tests only (see generations/fake_segmind.py for the faults it can play).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from generations.fake_segmind import FakeSegmind


class Command(BaseCommand):
    help = "Run a fake Segmind Mochi 1 API (v1 and v2) on this machine."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--latency", type=float, default=6.0, help="Seconds a generation takes (default 6)."
        )
        parser.add_argument(
            "--record-ttl", type=float, default=3600.0, help="Seconds a v2 record lives."
        )
        parser.add_argument("--rpm", type=int, default=0, help="Answer 429 above this rate.")
        parser.add_argument(
            "--fault-rate", type=float, default=0.0, help="Share of calls given a random fault."
        )
        parser.add_argument("--verbose", action="store_true", help="Log every request.")

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeSegmind(
            options["host"],
            options["port"],
            latency=options["latency"],
            record_ttl=options["record_ttl"],
            rpm=options["rpm"],
            fault_rate=options["fault_rate"],
            quiet=not options["verbose"],
            pretty=True,
        )
        self.stdout.write(json.dumps({"url": fake.url, "latency": options["latency"]}))
        self.stdout.flush()
        try:
            fake.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            fake.stop()
