"""`make run`: start everything, print the gateway URL, stop cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time

from deelrx_kit.settings import Settings
from deploy.local.launcher import prepare


def main() -> int:
    settings = Settings()
    suite = prepare(settings)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    # Explicit for SIGINT too: a launcher started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        suite.start_infrastructure()
        suite.start_services()
        suite.wait_healthy()
        mail = "SMTP " + settings.smtp_url if settings.smtp_url else f"files in {settings.data_dir.resolve() / 'mail'}"
        print(
            f"\nDeelRx auth suite is up.\n  gateway: {settings.public_url}\n"
            f"  API docs: {settings.public_url}/docs\n  NATS: {suite.env['DEELRX_NATS_URL']}\n"
            f"  Redis: {suite.env['DEELRX_REDIS_URL']}\n  mail: {mail}\n"
            f"  internal gRPC: {suite.transport}\n"
            f"  data: {settings.data_dir.resolve()}\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        while True:
            for name, proc in suite.services.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"failed to start: {exc}", file=sys.stderr)
        return 1
    finally:
        suite.stop()


if __name__ == "__main__":
    sys.exit(main())
