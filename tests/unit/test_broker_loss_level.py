"""How loudly the worker reports a try at the broker that failed: operators alert on ERROR."""

import logging
import socket
import ssl

import pika.exceptions
import pytest

from service.worker import OUTAGE_SECONDS, loss_level

LOST = pika.exceptions.StreamLostError("Transport indicated EOF")
REFUSED = pika.exceptions.AMQPConnectionError(ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize("error", [LOST, REFUSED])
def test_a_broker_restarting_is_a_warning_until_it_has_been_gone_a_minute(error):
    assert loss_level(error, down_for=0) == logging.WARNING
    assert loss_level(error, down_for=OUTAGE_SECONDS - 1) == logging.WARNING
    assert loss_level(error, down_for=OUTAGE_SECONDS) == logging.ERROR


def test_a_refused_login_is_an_error_at_once():
    refused = pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED")
    assert loss_level(refused, down_for=0) == logging.ERROR


def test_a_certificate_not_trusted_is_an_error_at_once_though_pika_raised_it_bare():
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped = pika.exceptions.AMQPConnectionError(untrusted)
    wrapped.__cause__ = untrusted
    assert loss_level(wrapped, down_for=0) == logging.ERROR


def test_a_name_that_does_not_resolve_waits_a_minute_as_a_restarting_container_has_none():
    unresolved = socket.gaierror(-2, "Name or service not known")
    wrapped = pika.exceptions.AMQPConnectionError(unresolved)
    wrapped.__cause__ = unresolved
    assert loss_level(wrapped, down_for=0) == logging.WARNING
    assert loss_level(wrapped, down_for=OUTAGE_SECONDS) == logging.ERROR
