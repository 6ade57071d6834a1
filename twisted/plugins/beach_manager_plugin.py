# Twisted drop-in for beach-manager.  It must stay lazy: importing it installs
# no reactor and imports nothing from beachmanager until a command runs.
from twisted.application.reactors import Reactor
from twisted.application.service import ServiceMaker

beachManager = ServiceMaker(
    "beach-manager",
    "beachmanager.tap",
    "Manage Beach terminal hosts: join them as a Beach client and run the manager bus.",
    "beach-manager",
)

beachRoadDev = ServiceMaker(
    "beach-road-dev",
    "beachmanager.devstack.road.tap",
    "Development Beach Road: a Road-compatible signaling server held in memory.",
    "beach-road-dev",
)

beachHostDev = ServiceMaker(
    "beach-host-dev",
    "beachmanager.devstack.host.tap",
    "Development Beach host: a PTY served to WebRTC peers with cache sync and the manager bus.",
    "beach-host-dev",
)

beachAsyncio = Reactor(
    "beach-asyncio",
    "beachmanager._reactor",
    "asyncio reactor on a fresh event loop that is made current (needed by aiortc and psycopg).",
)
