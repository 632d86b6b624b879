"""The catalogue of faults the mock can inject, one seeded draw per generation request.

Each fault has a rate option (``--error-rate-<name>``, a probability; the rates add up to
at most 1) and exactly one place where it happens:

* answered at once, without taking a capacity slot: ``500`` (vLLM's JSON error body),
  ``429`` (with ``Retry-After``), ``404`` (vLLM's unknown-model body), ``reset`` (the
  connection is reset, RST, right after the request arrives: nothing is answered), ``502``
  (a gateway's body with a request id, trace id and timestamp new in every response),
  ``echo_401`` (a misconfigured gateway's 401 quoting the request's ``Authorization``), and
  what a misbehaving gateway in front of the engine sends (see :mod:`.gateway`):
  ``huge_error`` (a 500 whose body is ``--huge-error-bytes`` long), ``endless_error`` (a
  502 whose chunked HTML body never ends), ``huge_header`` (a 502 whose head carries one
  header line of ``--huge-header-bytes``);
* inside a 200 stream, about halfway (token ``n // 2``): ``stream`` (vLLM's error event,
  then ``[DONE]``), ``malformed`` (an event whose JSON is cut short; the stream goes on),
  ``non_utf8`` (a token whose text holds bytes that are not UTF-8), ``cut`` (half of a
  token's event, then the connection closes), ``huge_event`` (one token whose text is
  ``--huge-event-bytes`` long; the stream goes on and ends well), ``stall`` (nothing more
  is sent and the connection stays open, so only the client's read timeout ends it);
* at the end: ``no_done`` (the body ends without ``data: [DONE]``), ``no_usage`` (no usage
  chunk although ``include_usage`` asked for one);
* from the start: ``trickle`` (the whole body, one byte every ``--trickle-interval-ms``:
  bytes keep coming, so only a total request timeout ends it);
* as proxies and gateways misbehave: ``continue_100`` (interim ``100 Continue`` and ``103
  Early Hints`` responses, unasked, before the 200), ``done_no_end`` (every token and
  ``data: [DONE]``, then neither the chunked body's end nor a close: the connection stays
  open), ``done_pings`` (comment pings, ``: ping``, after ``[DONE]`` until the client
  leaves), ``gzip`` (the body gzip-encoded, ``Content-Encoding: gzip``, whatever the
  request's ``Accept-Encoding``), ``empty_data`` (a ``data: `` keep-alive with no payload
  before every token).

A non-streamed request meets the same fault in its own shape: the body is cut, malformed,
not UTF-8, huge, late, trickled, gzipped, after interim responses, or without usage
(``stream`` and ``no_done`` become a 500, as vLLM answers an engine failure without
streaming; ``done_no_end``, ``done_pings`` and ``empty_data`` need a stream and leave a
non-streamed answer alone).

What is injected is counted per kind in ``/metrics``
(``sagellm_mock:injected_faults_total{kind=...}``), so a test can hold a client's failures
against the truth.
"""

from __future__ import annotations

import enum

__all__ = [
    "FAULT_RATE_FIELDS",
    "HTTP_FAULTS",
    "RESPONSE_FAULTS",
    "STREAM_ONLY_FAULTS",
    "Fault",
    "fault_for_field",
]


class Fault(enum.Enum):
    """An injected failure drawn for one generation request."""

    NONE = "none"
    HTTP_500 = "500"
    HTTP_429 = "429"
    HTTP_404 = "404"
    RESET = "reset"
    STREAM = "stream"
    MALFORMED = "malformed"
    NON_UTF8 = "non_utf8"
    CUT = "cut"
    HUGE_EVENT = "huge_event"
    STALL = "stall"
    NO_DONE = "no_done"
    NO_USAGE = "no_usage"
    TRICKLE = "trickle"
    CONTINUE_100 = "continue_100"
    DONE_NO_END = "done_no_end"
    DONE_PINGS = "done_pings"
    GZIP = "gzip"
    EMPTY_DATA = "empty_data"
    HUGE_ERROR = "huge_error"
    ENDLESS_ERROR = "endless_error"
    HUGE_HEADER = "huge_header"
    HTTP_502 = "502"
    ECHO_401 = "echo_401"

    @property
    def rate_field(self) -> str:
        """The :class:`~.config.MockServerConfig` field holding this fault's rate."""
        return "error_rate_" + self.value


#: Config fields of every fault's rate, in the order the draw tests them.
FAULT_RATE_FIELDS: tuple[str, ...] = tuple(f.rate_field for f in Fault if f is not Fault.NONE)

#: Faults answered before any generation starts.
HTTP_FAULTS = frozenset(
    {
        Fault.HTTP_500,
        Fault.HTTP_429,
        Fault.HTTP_404,
        Fault.RESET,
        Fault.HUGE_ERROR,
        Fault.ENDLESS_ERROR,
        Fault.HUGE_HEADER,
        Fault.HTTP_502,
        Fault.ECHO_401,
    }
)

#: Faults that shape the whole response (its head, its framing) rather than one token.
RESPONSE_FAULTS = frozenset({Fault.CONTINUE_100, Fault.GZIP, Fault.EMPTY_DATA})

#: Faults only a stream can have; a non-streamed request that draws one is answered well.
STREAM_ONLY_FAULTS = frozenset(
    {Fault.NO_DONE, Fault.DONE_NO_END, Fault.DONE_PINGS, Fault.EMPTY_DATA}
)

_BY_FIELD = {f.rate_field: f for f in Fault if f is not Fault.NONE}


def fault_for_field(name: str) -> Fault:
    """The fault whose rate ``name`` holds (``error_rate_cut`` -> :attr:`Fault.CUT`)."""
    return _BY_FIELD[name]
