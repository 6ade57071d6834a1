"""Root test configuration: install the beach-asyncio reactor before anything imports a reactor.

pytest-twisted (``--reactor=asyncio`` in setup.cfg) accepts an asyncio reactor that is
already installed, so the loop it runs is the explicit, current loop aiortc needs.
"""

from beachmanager import _reactor

if _reactor.installed_reactor() is None:
    _reactor.install()
