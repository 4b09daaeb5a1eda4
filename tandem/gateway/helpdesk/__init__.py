"""The help-desk port of the handoff (issue 13) and its adapters.

:class:`~tandem.gateway.helpdesk.port.HelpDesk` is what the gateway's desk tells a help desk:
a handoff opened, a customer's message, a handoff ended by the customer or the timeout. The
embedded desk (:class:`~tandem.gateway.helpdesk.port.EmbeddedDesk`, the default) needs none of it:
the console reads the database. The Chatwoot adapter (:mod:`.chatwoot`) mirrors each handoff in a
Chatwoot API-channel inbox; what Chatwoot's agents do comes back through its webhook
(``tandem/gateway/chatwoot_routes.py``) as calls of :class:`~tandem.gateway.helpdesk.port.DeskInbound`.
"""

from tandem.gateway.helpdesk.port import DeskInbound, DeskTicket, EmbeddedDesk, HelpDesk

__all__ = ["DeskInbound", "DeskTicket", "EmbeddedDesk", "HelpDesk"]
