"""statesock's tools: the ``statesock`` command and what it is built from. Not the library.

* :mod:`~statesock.tools.cli`: the ``statesock`` command (``python -m statesock``);
* :mod:`~statesock.tools.diagram`: state diagrams rendered from the machine's rule table;
* :mod:`~statesock.tools.log_reader` (reading transition logs: parsing, gzip, the schema) and
  :mod:`~statesock.tools.log_analysis` (checking and summarising what was read):
  ``statesock logs``;
* :mod:`~statesock.tools.report`: ``statesock report``, a self-contained HTML page whose CSS,
  JavaScript and HTML template ship as package data in ``statesock/tools/report_assets/``;
* :mod:`~statesock.tools.console`: colours, readable transition lines, the live log sink;
* :mod:`~statesock.tools.demo` and :mod:`~statesock.tools.debug_client`: ``statesock demo`` and
  ``statesock connect``, the only tools that load the network stack (lazily, from the CLI).

The library never imports this package: a client works the same whether or not it is present.
The log *writer* is part of the library (:mod:`statesock.transition_log`, used at run time);
the event and field names it shares with these readers live in :mod:`statesock.log_schema`.
"""
