"""A progress line for long jobs: done/total, items per second and ETA, on stderr.

On a terminal the line is rewritten in place (at most 4 times a second); into a file or
pipe a line is written every `every` seconds, so logs stay short.
"""
import sys
import time


class StatusLine:
    def __init__(self, total, unit="img", stream=None, enabled=True, every=10.0):
        self.total, self.unit, self.enabled, self.every = total, unit, enabled, every
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.shown = ""

    def text(self, done):
        elapsed = time.perf_counter() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"ETA {(self.total - done) / rate:.0f} s" if rate else "ETA -"
        return f"{done}/{self.total} {self.unit}  {rate:.1f} {self.unit}/s  {eta}"

    def update(self, done):
        now = time.perf_counter()
        if not self.enabled or now - self.last < (0.25 if self.tty else self.every):
            return
        self.last = now
        self._show(self.text(done))

    def _show(self, line):
        if self.tty:
            pad = " " * max(0, len(self.shown) - len(line))
            self.stream.write(f"\r{line}{pad}")
            self.shown = line
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text):
        """Print a line of its own (a warning) without mixing it into the status line."""
        if self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
        self.stream.write(text + "\n")
        if self.shown:
            self.stream.write(self.shown)
        self.stream.flush()

    def close(self, summary):
        """Replace the status line by a final summary (when enabled)."""
        if not self.enabled:
            return
        if self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.shown = ""
        self.stream.write(summary + "\n")
        self.stream.flush()

    def elapsed(self):
        return time.perf_counter() - self.t0
