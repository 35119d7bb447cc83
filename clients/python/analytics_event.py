"""The seed's ``analytics_event()`` for Python hosts, sending to a ga4-relay-analytics collector.

Standard library only: copy this file into the host. Configuration comes from the environment,
read at every call (so a host may set it late, or change it, without a restart):

- ``ANALYTICS_URL``: where the collector is, e.g. ``http://127.0.0.1:3000`` or, behind a
  host's mount prefix, ``https://host.example/analytics``.
- ``ANALYTICS_EVENTS_KEY``: the collector's events key (its own ``ANALYTICS_EVENTS_KEY``); surrounding
  whitespace, such as the newline at the end of a secret mounted from a file, is dropped as the
  collector drops it from its own.

Reporting must never break or stall the host's work, so the function never raises: whatever
goes wrong is one warning on the ``ga4_relay_analytics`` logger (one line, never containing the key)
and a ``False`` answer.
"""

import json
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request

__all__ = ['analytics_event']

logger = logging.getLogger('ga4_relay_analytics')

#: Seconds allowed for connecting and for each read; a collector that is down costs at most this.
TIMEOUT_SECONDS = 5

# The seed's event types, as the collector's `POST /api/events` names them.
_EVENT_TYPES = {'Celery': 'task', 'Stats': 'stats'}

# How much of a refusal's body goes into the warning: enough for the collector's one-line reason.
_MAX_REASON_CHARS = 200

# What the collector's String.prototype.trim() drops from the ends of its own key (ECMAScript's white
# space and line terminators). Python's str.strip() differs: it also drops U+001C-U+001F and U+0085,
# and keeps U+FEFF.
_TRIMMED = '\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'


class _NotSent(Exception):
    """Why an event was not sent; becomes the warning's text."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would repeat the request, Authorization header included, wherever a redirect points:
    # the key goes to the collector named by ANALYTICS_URL and nowhere else.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def analytics_event(namespace: str, task: str, label: str = '', result: str = '', value: int = 1, event_type: str = 'Celery') -> bool:
    """Send an analytics event to the collector, which queues it for each token stored that has the
    matching feature enabled (Celery Events or Daily Stats); a disabled feature or an opted-out
    install is the collector's business.

    :param namespace: Celery Namespace, e.g. ``allianceauth.eveonline``
    :param task: Task Name
    :param label: Optional, additional task label
    :param result: Optional, Task Success/Exception
    :param value: Optional, If bulk, Query size, can be a Boolean (sent as true/false)
    :param event_type: Optional, Celery or Stats only, Default to Celery
    :returns: ``True`` when the collector accepted the event (answered 202), ``False`` otherwise.
        Never raises: a failure is logged as one warning on the ``ga4_relay_analytics`` logger.

    >>> analytics_event('allianceauth.eveonline', 'update_character', result='Success', value=25)  # doctest: +SKIP
    True
    """
    key = ''
    try:
        key = os.environ.get('ANALYTICS_EVENTS_KEY', '').strip(_TRIMMED)
        _send(namespace, task, label, result, value, event_type, key)
        return True
    except Exception as error:  # noqa: BLE001 - reporting never raises into the host, whatever went wrong
        if isinstance(error, _NotSent):
            reason = _one_line(str(error))
        else:
            # Only the class: the text of an error raised while the request was built or sent can quote
            # the Authorization header (urllib's "Invalid header value b'Bearer ...'"), in a form no
            # search for the key would find.
            reason = 'unexpected %s while building or sending the request (its text is not logged: it may quote the key)' % _one_line(type(error).__name__)
        if key:
            reason = reason.replace(key, '[key]').replace(_one_line(key), '[key]')
        logger.warning('analytics event %s.%s not sent: %s', _short(namespace), _short(task), reason)
        return False


def _send(namespace, task, label, result, value, event_type, key):
    """Posts the event; returns when the collector answered 202, raises otherwise."""
    if event_type not in _EVENT_TYPES:
        raise _NotSent('event_type must be %s (got %s)' % (' or '.join(map(repr, _EVENT_TYPES)), _short(repr(event_type))))
    for name, text in (('namespace', namespace), ('task', task), ('label', label), ('result', result)):
        if not isinstance(text, str):
            raise _NotSent('%s must be a str (got %s)' % (name, type(text).__name__))
    # bool is an int in Python: it is checked by the same test and json.dumps writes it as true/false.
    if not isinstance(value, (int, float)):
        raise _NotSent('value must be a number or a bool (got %s)' % type(value).__name__)
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotSent('value must be finite (got %s)' % value)

    base = os.environ.get('ANALYTICS_URL', '').strip()
    if not base:
        raise _NotSent('ANALYTICS_URL is not set')
    if not key:
        raise _NotSent('ANALYTICS_EVENTS_KEY is not set')
    # A header carries Latin-1 text without control characters; urllib would refuse the key with its
    # value in the error's text, or send a line break inside it.
    if any(ord(c) > 0xFF or _is_control(c) for c in key):
        raise _NotSent('ANALYTICS_EVENTS_KEY holds a control character (a line break?) or one beyond Latin-1: no HTTP header can carry it')
    parts = urllib.parse.urlsplit(base)
    # urllib also opens file: and ftp: URLs; only a web collector is meant.
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise _NotSent('ANALYTICS_URL must be an http:// or https:// URL')
    where = '%s://%s' % (parts.scheme, parts.netloc.rpartition('@')[2])

    # allow_nan=False: NaN and Infinity are not JSON; the collector would refuse them anyway.
    body = json.dumps(
        {'namespace': namespace, 'task': task, 'label': label, 'result': result, 'value': value, 'type': _EVENT_TYPES[event_type]},
        allow_nan=False,
    ).encode('utf-8')
    request = urllib.request.Request(
        base.rstrip('/') + '/api/events',
        data=body,
        method='POST',
        headers={'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'},
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as refused:
        raise _NotSent('%s answered %s%s' % (where, refused.code, _reason(refused)))
    except urllib.error.URLError as unreachable:
        raise _NotSent('could not reach %s (%s)' % (where, unreachable.reason))
    except OSError as failed:  # a timeout while reading, a reset connection
        raise _NotSent('no answer from %s (%s)' % (where, failed))
    # Anything but 202 is not the collector queueing the event (a proxy's page, say).
    if status != 202:
        raise _NotSent('%s answered %s, not 202' % (where, status))


def _reason(refused):
    """The collector's one-line reason from a refusal's JSON body (`{"error": ...}`), if there is one."""
    try:
        text = refused.read(4096).decode('utf-8', 'replace')
        error = json.loads(text).get('error')
    except Exception:  # noqa: BLE001 - the reason is a courtesy; the status says enough
        return ''
    finally:
        refused.close()  # the refusal holds the connection open until closed
    return ' (%s)' % _short(str(error), _MAX_REASON_CHARS) if error else ''


def _short(text, limit=100):
    """A caller's text as it goes into a log line: a repr for non-strings, on one line, cut at `limit`."""
    if not isinstance(text, str):
        try:
            text = repr(text)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not turn a warning into a raise
            text = '<%s>' % type(text).__name__
    text = _one_line(text)
    return text if len(text) <= limit else text[:limit] + '...'


def _is_control(char):
    return char < ' ' or '\x7f' <= char <= '\x9f'


def _one_line(text):
    """`text` with each unprintable character (line breaks, terminal escapes, ...) written as Python
    escapes it (``\\n``, ``\\x1b``, ``\\u2028``), so that a warning is always one line of plain text."""
    return ''.join(c if c.isprintable() or c == ' ' else repr(c)[1:-1] for c in text)
