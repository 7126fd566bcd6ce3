# wstest, with the servers it starts (fuzzingserver) bound to 127.0.0.1 only:
# wstest itself binds them to every interface.
import sys

from autobahn.twisted import websocket
from autobahntestsuite import fuzzing, wstest


def listen_on_loopback(factory, contextFactory=None, backlog=50, interface=''):
    return websocket.listenWS(factory, contextFactory, backlog, '127.0.0.1')


fuzzing.listenWS = listen_on_loopback
sys.exit(wstest.run())
