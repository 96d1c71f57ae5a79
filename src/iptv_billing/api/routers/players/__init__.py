"""The Xtream-Codes-compatible endpoints subscribers' apps call: ``player_api.php``,
``get.php`` (M3U), ``xmltv.php`` and the ``/live``, ``/timeshift``, ``/play`` and ``/movie``
(VOD) stream URLs.

Public routes: the line's username and password (or a play token) are the credentials, and
every login failure counts against the caller's IP (``StreamAuthorizer``). Choices where apps
and the reference leave room (``iptv-integration.md`` §2.1, §5):

* Wrong credentials on ``player_api.php`` answer HTTP 200 ``{"user_info": {"auth": 0}}``, the
  answer apps handle. XC_VM sends a fake nginx 404 page instead (reference §2.1), which apps
  show as "wrong server URL". An IP blocked for guessing gets the same body with 429.
* An account that is not Active (expired, disabled, banned) still logs in and sees its
  status, but its content lists are empty and its playlist and guide are refused (403).
* Unknown actions answer ``[]``, as Xtream servers do for lists they have nothing in; the
  numeric action aliases are not offered (the reference does not say which is which).
* Stream URLs answer 302 to the channel's ``source_url`` (``{user}``: the credential's login,
  ``{token}``: the secret presented, URL-quoted), or a short text naming the refusal: 401
  unknown credentials, 429 guessing, 404 unknown stream, 403 any other reason. They check
  without opening a session: the origin server counts sessions through its own callbacks.
* No short form ``/{user}/{pass}/{stream}``: three free path segments would catch every
  unknown three-segment path of the API (a 401 instead of a 404) and shadow future routes.
"""

from __future__ import annotations

# Importing the modules adds their routes to ``router``: player_api.php, then get.php and
# xmltv.php, then the stream URLs.
from iptv_billing.api.routers.players import player_api, playlists, redirects  # noqa: F401
from iptv_billing.api.routers.players._common import router

__all__ = ["router"]
