"""Tests of analytics_event(); standard library only: `python3 -m unittest -v clients/python/test_analytics_event.py`.

`AgainstCollector` needs a running collector named by ANALYTICS_URL and ANALYTICS_EVENTS_KEY (the vitest
test test/integration/python-client.test.ts starts one, runs this file, then checks the queued rows
field by field; keep the two in step). The other classes need nothing but a loopback interface.
"""

import http.server
import json
import logging
import os
import socket
import sys
import threading
import time
import unittest
from unittest import mock

# Run by path from the repository root, this file is imported as clients.python.test_analytics_event:
# its neighbour is found through its own folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from analytics_event import analytics_event  # noqa: E402

NAMESPACE = 'python_client.tests'
# The collector's own limit is 5 s a step; the issue allows the host 6 s when the collector is down.
DOWN_WITHIN_SECONDS = 6
HAS_COLLECTOR = bool(os.environ.get('ANALYTICS_URL') and os.environ.get('ANALYTICS_EVENTS_KEY'))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


class _WatchesLog(unittest.TestCase):
    """Collects what the client logs, so that each test can say how many warnings it expects."""

    def setUp(self):
        self.log = _Records()
        logger = logging.getLogger('ga4_relay_analytics')
        logger.addHandler(self.log)
        self.addCleanup(logger.removeHandler, self.log)

    def messages(self):
        return [record.getMessage() for record in self.log.records]

    def assertOneWarning(self, *expected):
        messages = self.messages()
        self.assertEqual(len(messages), 1, messages)
        self.assertEqual(self.log.records[0].levelno, logging.WARNING)
        for text in expected:
            self.assertIn(text, messages[0])
        return messages[0]

    def assertQuiet(self):
        self.assertEqual(self.messages(), [])


def _closed_port():
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@unittest.skipUnless(HAS_COLLECTOR, 'needs ANALYTICS_URL and ANALYTICS_EVENTS_KEY of a running collector')
class AgainstCollector(_WatchesLog):
    """Events the collector queues (or refuses); the vitest side checks the rows these leave."""

    def test_accepted_with_every_field(self):
        self.assertIs(analytics_event(NAMESPACE, 'send_invoices', label='monthly', result='Success', value=12), True)
        self.assertQuiet()

    def test_defaults(self):
        self.assertIs(analytics_event(NAMESPACE, 'defaults'), True)
        self.assertQuiet()

    def test_bool_values(self):
        self.assertIs(analytics_event(NAMESPACE, 'bool_true', result='Success', value=True), True)
        self.assertIs(analytics_event(NAMESPACE, 'bool_false', result='Success', value=False), True)
        self.assertQuiet()

    def test_float_value(self):
        self.assertIs(analytics_event(NAMESPACE, 'float_value', value=2.5), True)
        self.assertQuiet()

    def test_stats_event_type(self):
        self.assertIs(analytics_event(NAMESPACE, 'users', label='count', value=42, event_type='Stats'), True)
        self.assertQuiet()

    def test_trailing_slash_in_url(self):
        with mock.patch.dict(os.environ, {'ANALYTICS_URL': os.environ['ANALYTICS_URL'] + '/'}):
            self.assertIs(analytics_event(NAMESPACE, 'trailing_slash'), True)
        self.assertQuiet()

    def test_wrong_key_is_refused_and_never_logged(self):
        right = os.environ['ANALYTICS_EVENTS_KEY']
        wrong = 'wrong-' + right[::-1]
        with mock.patch.dict(os.environ, {'ANALYTICS_EVENTS_KEY': wrong}):
            self.assertIs(analytics_event(NAMESPACE, 'wrong_key'), False)
        message = self.assertOneWarning('wrong_key', '401')
        self.assertNotIn(wrong, message)
        self.assertNotIn(right, message)

    def test_refusal_reason_is_logged(self):
        # The collector, not the client, knows a namespace must not be blank.
        self.assertIs(analytics_event('', 'blank_namespace'), False)
        self.assertOneWarning('400', 'namespace')

    def test_unknown_event_type_sends_nothing(self):
        self.assertIs(analytics_event(NAMESPACE, 'unknown_type', event_type='PageView'), False)
        self.assertOneWarning('event_type', "'PageView'")

    def test_bad_arguments_do_not_raise(self):
        self.assertIs(analytics_event(NAMESPACE, 'bad_value', value='many'), False)
        self.assertIs(analytics_event(NAMESPACE, 'nan_value', value=float('nan')), False)
        self.assertIs(analytics_event(None, 'none_namespace'), False)
        self.assertIs(analytics_event(NAMESPACE, 'bad_label', label=None), False)
        self.assertEqual(len(self.messages()), 4, self.messages())


class CollectorDown(_WatchesLog):
    """No collector to answer: the host gets False, one warning, and its time back within 6 s."""

    def call_timed(self, url):
        with mock.patch.dict(os.environ, {'ANALYTICS_URL': url, 'ANALYTICS_EVENTS_KEY': 'a-key-of-sixteen-chars'}):
            started = time.monotonic()
            sent = analytics_event(NAMESPACE, 'collector_down')
            elapsed = time.monotonic() - started
        self.assertIs(sent, False)
        self.assertLess(elapsed, DOWN_WITHIN_SECONDS)
        self.assertNotIn('a-key-of-sixteen-chars', self.assertOneWarning('collector_down'))

    def test_closed_port(self):
        self.call_timed('http://127.0.0.1:%d' % _closed_port())

    def test_collector_that_never_answers(self):
        # Connections complete in the kernel's backlog but nothing is ever read or answered: the timeout must end it.
        with socket.socket() as listening:
            listening.bind(('127.0.0.1', 0))
            listening.listen(8)
            self.call_timed('http://127.0.0.1:%d' % listening.getsockname()[1])
        self.assertIn('timed out', self.messages()[0])

    def test_unset_url(self):
        with mock.patch.dict(os.environ, {'ANALYTICS_EVENTS_KEY': 'a-key-of-sixteen-chars'}):
            os.environ.pop('ANALYTICS_URL', None)
            self.assertIs(analytics_event(NAMESPACE, 'unset_url'), False)
        self.assertOneWarning('ANALYTICS_URL is not set')

    def test_unset_key(self):
        with mock.patch.dict(os.environ, {'ANALYTICS_URL': 'http://127.0.0.1:%d' % _closed_port()}):
            os.environ.pop('ANALYTICS_EVENTS_KEY', None)
            self.assertIs(analytics_event(NAMESPACE, 'unset_key'), False)
        self.assertOneWarning('ANALYTICS_EVENTS_KEY is not set')

    def test_not_a_web_url(self):
        with mock.patch.dict(os.environ, {'ANALYTICS_URL': 'file:///etc/passwd', 'ANALYTICS_EVENTS_KEY': 'a-key-of-sixteen-chars'}):
            self.assertIs(analytics_event(NAMESPACE, 'file_url'), False)
        self.assertOneWarning('http:// or https://')


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the server's `status` (and `location`), keeping what it received."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        self.server.received.append({'path': self.path, 'headers': dict(self.headers), 'body': body})
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header('Location', self.server.location)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class AgainstRecordingServer(_WatchesLog):
    """What goes on the wire, seen by a stand-in that answers as told."""

    KEY = 'recording-server-key-0123'

    def setUp(self):
        super().setUp()
        self.server = http.server.HTTPServer(('127.0.0.1', 0), _Recorder)
        self.server.received = []
        self.server.status = 202
        self.server.location = None
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.base = 'http://127.0.0.1:%d' % self.server.server_address[1]

    def send(self, url, **options):
        with mock.patch.dict(os.environ, {'ANALYTICS_URL': url, 'ANALYTICS_EVENTS_KEY': self.KEY}):
            return analytics_event(NAMESPACE, 'on_the_wire', **options)

    def test_request_under_a_mount_prefix(self):
        self.assertIs(self.send(self.base + '/analytics/', label='l', result='KeyError', value=True, event_type='Stats'), True)
        [request] = self.server.received
        self.assertEqual(request['path'], '/analytics/api/events')
        self.assertEqual(request['headers']['Authorization'], 'Bearer ' + self.KEY)
        self.assertEqual(request['headers']['Content-Type'], 'application/json')
        self.assertEqual(
            json.loads(request['body']),
            {'namespace': NAMESPACE, 'task': 'on_the_wire', 'label': 'l', 'result': 'KeyError', 'value': True, 'type': 'stats'},
        )
        self.assertQuiet()

    def test_redirect_is_not_followed(self):
        # Following it would hand the key to wherever the redirect points.
        self.server.status = 307
        self.server.location = 'http://127.0.0.1:%d/api/events' % _closed_port()
        self.assertIs(self.send(self.base), False)
        self.assertEqual(len(self.server.received), 1)
        self.assertNotIn(self.KEY, self.assertOneWarning('307'))

    def test_only_202_counts(self):
        for status in (200, 204, 500, 503):
            self.server.status = status
            self.assertIs(self.send(self.base), False)
        self.assertEqual(len(self.messages()), 4, self.messages())


if __name__ == '__main__':
    unittest.main()
