"""The operator's console: a live status page served by the manager at ``GET /ui/``.

* :mod:`.view` -- what the page shows, as JSON: this instance, the cluster's members, one row
  per host (owner, standby, status, phase, RTC-ready time, reconnects, queue depth, last
  ack, epoch), recent moves, failovers and session changes; a host's detail (phase
  timeline, the mirrored terminal as text).
* :mod:`.hub` -- :class:`~.hub.ConsoleHub`: follows the session stream and the final acks,
  builds the view (coalesced) and pushes it to every open stream.
* :mod:`.sse` -- one server-sent-events stream, bounded for a slow reader.
* :mod:`.routes` -- ``/ui/`` (the page), ``/ui/static/<name>`` (its assets, shipped in
  ``static/``), ``/ui/stream`` (the live stream); all guarded by ``pb:manager.debug``.

No build step: ``static/`` holds plain HTML, CSS and JavaScript, and nothing is fetched
from elsewhere at run time.
"""
