"""taskmeter under ``opentelemetry-instrument``: the ``taskmeter`` instrumentor.

Installed as the ``opentelemetry_instrumentor`` entry point ``taskmeter``, so
``opentelemetry-instrument python app.py`` turns on, with no code change:

* the OpenTelemetry SDK, configured from the ``OTEL_*`` variables, *if*
  no configurator (``opentelemetry-distro``'s) did it already
  (:mod:`taskmeter.instrumentation.sdk` explains why taskmeter has no
  configurator of its own; ``TASKMETER_CONFIGURE_SDK=false`` turns this off),
  exporting durably through ``TASKMETER_SPOOL_DIR`` when it is set;
* enrichment of the spans ``TASKMETER_ENRICH`` selects (default: local
  roots, such as a web framework's server spans, and spans marked with
  ``taskmeter.enrich``), by an :class:`~taskmeter.enrich.EnrichingSpanProcessor`
  placed in front of the provider's exporting processors (a processor in it
  that raises is contained; a configurator's ``BatchSpanProcessor`` of the
  ``taskmeter`` exporter becomes a
  :class:`~taskmeter.export.DurableSpanProcessor`);
* a :class:`~taskmeter.measure.MeasurementSpanProcessor` (specs from
  ``TASKMETER_METRIC_SPECS``, task metrics) recording to the global meter
  provider;
* the probes and the monitor thread, started now rather than in the first
  request.

``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=taskmeter`` leaves all of it off;
``TaskmeterInstrumentor().uninstrument()`` takes the processors out again
(providers taskmeter set as the global ones stay, as the API cannot unset
them).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED
from opentelemetry.trace import ProxyTracerProvider

from .. import __about__, settings
from .._log import logger, swallowed
from ..measure import MeasurementSpanProcessor
from ..monitor import get_monitor
from ..probes import active_probes
from .provider import Wrapped, wrap_provider
from .sdk import SdkSetup, configure_from_environment

try:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
except ImportError as exc:  # the base install has no opentelemetry-instrumentation
    raise ModuleNotFoundError(
        "taskmeter.instrumentation needs opentelemetry-instrumentation "
        "(pip install 'taskmeter[instrument]')",
        name=exc.name,
    ) from exc

__all__ = ["TaskmeterInstrumentor"]


class TaskmeterInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Turns taskmeter on for a whole program (``opentelemetry-instrument``).

    Keyword arguments of :meth:`instrument`: ``tracer_provider`` and
    ``meter_provider`` (default: the global ones; configured from ``OTEL_*``
    when none is set), ``select`` (a :class:`~taskmeter.enrich.SpanSelector`
    or its text; default ``TASKMETER_ENRICH``) and ``specs`` (metric specs
    added to those of ``TASKMETER_METRIC_SPECS``).
    """

    _wrapped: Wrapped | None = None
    _sdk: SdkSetup | None = None
    _measurement: MeasurementSpanProcessor | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """Nothing to check: taskmeter instruments no third-party library."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        try:
            self._install(**kwargs)
        except Exception as exc:  # the program must start whatever happens here
            swallowed("instrument", exc)

    def _install(self, **kwargs: Any) -> None:
        if os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
            logger.debug("%s=true: taskmeter records no spans or metrics", OTEL_SDK_DISABLED)
            return
        tracer_provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
        meter_provider: MeterProvider | None = kwargs.get("meter_provider")
        if isinstance(tracer_provider, ProxyTracerProvider):
            if not settings.configure_sdk():
                logger.warning(
                    "no OpenTelemetry SDK is configured and %s is false: spans are not "
                    "enriched and no Measurement is recorded",
                    settings.ENV_CONFIGURE_SDK,
                )
                return
            self._sdk = configure_from_environment(_auto_version())
            tracer_provider = self._sdk.tracer_provider
            meter_provider = meter_provider or self._sdk.meter_provider
        measurement = MeasurementSpanProcessor(
            tuple(kwargs.get("specs", ())),
            meter_provider=meter_provider or metrics.get_meter_provider(),
        )
        self._measurement = measurement
        self._wrapped = wrap_provider(
            tracer_provider, select=kwargs.get("select"), extra=(measurement,)
        )
        active_probes()  # detect the sources now, not in the first request
        get_monitor()
        if self._wrapped is not None:
            logger.debug("taskmeter enriches %s spans", self._wrapped.wrapper.selector.description)

    def _uninstrument(self, **kwargs: Any) -> None:
        wrapped, self._wrapped = self._wrapped, None
        if wrapped is not None:
            wrapped.undo()
        measurement, self._measurement = self._measurement, None
        if measurement is not None:  # it no longer counts tasks whose spans are not recorded
            measurement.shutdown()


def _auto_version() -> str | None:
    try:
        from opentelemetry.instrumentation.version import __version__ as version
    except ImportError:  # pragma: no cover - the instrumentor comes with that package
        return None
    return str(version)


__version__ = __about__.__version__
