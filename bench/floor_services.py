"""The nameko floor's services (bench/floor.py): the lifecycle's messages with no work around them.

`FloorFront` answers HTTP (nameko's own web server, as the gateway's) by one RPC to `FloorBack`, which
publishes the events it is asked for (nameko's EventDispatcher: persistent, confirmed); three listeners
take them with nameko's event handlers (durable queues, acked) and do nothing. An event of type `fanout2`
reaches two listeners, `fanout3` three, so a mix of the two gives the lifecycle's deliveries per event.
No database, no schema, no log line: what is left is nameko's, eventlet's, kombu's and the broker's.
"""
from __future__ import annotations

import json

from nameko.events import EventDispatcher, event_handler
from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http

PAYLOAD = {"data": {"code": "000.00.31.H56-261204-0001", "note": "x" * 600}}  # an event's size, about


class FloorFront:
    name = "floor_front"
    back = RpcProxy("floor_back")

    @http("POST", "/work")
    def work(self, request):
        asked = json.loads(request.get_data(as_text=True))
        return json.dumps(self.back.work(asked["fanout2"], asked["fanout3"]))

    @http("GET", "/ping")
    def ping(self, request):
        return "ok"


class FloorBack:
    name = "floor_back"
    dispatch = EventDispatcher()

    @rpc
    def work(self, fanout2: int, fanout3: int) -> dict:
        for event_type, count in (("fanout2", fanout2), ("fanout3", fanout3)):
            for _ in range(count):
                self.dispatch(event_type, PAYLOAD)
        return {"published": fanout2 + fanout3}


class FloorListenerA:
    name = "floor_listener_a"

    @event_handler("floor_back", "fanout2")
    def on_fanout2(self, payload):
        pass

    @event_handler("floor_back", "fanout3")
    def on_fanout3(self, payload):
        pass


class FloorListenerB(FloorListenerA):
    name = "floor_listener_b"


class FloorListenerC:
    name = "floor_listener_c"

    @event_handler("floor_back", "fanout3")
    def on_fanout3(self, payload):
        pass


SERVICES = ("FloorFront", "FloorBack", "FloorListenerA", "FloorListenerB", "FloorListenerC")
