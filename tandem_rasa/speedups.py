"""Work Rasa 3.6 repeats on every action call, done once (issue 14: profiled under load).

``RemoteAction._validate_action_result`` calls ``jsonschema.validate(result, schema)`` for every
answer of the action server, and ``jsonschema.validate`` first checks the *schema* against its
meta-schema before it checks the answer. On this machine, 100 concurrent conversations spent 27 %
of the Rasa process's CPU there (py-spy; the answer itself: under 1 %). The schema is a constant
(:meth:`RemoteAction.action_response_format_spec`), so it is checked once and its validator
reused; answers are validated exactly as before (the same best-matching error, the same message).

:func:`install` is called by the gateway channel when Rasa builds it (``tandem_rasa/channel.py``),
never at import time; calling it again changes nothing.
"""

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL

_MARK = "_tandem_cached_validator"


def install() -> None:
    """Replace ``RemoteAction._validate_action_result`` by one that reuses a checked validator."""
    if getattr(RemoteAction, _MARK, False):
        return
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # once, as jsonschema.validate would on every call
    validator = cls(schema)

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    setattr(RemoteAction, _MARK, True)


__all__ = ["ValidationError", "install"]
