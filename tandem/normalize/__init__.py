"""Turn what customers type (or what the NLU extracted) into canonical slot values.

Every function here is pure: no I/O, no Rasa, no state. Each one either returns the
canonical value or raises :class:`tandem.errors.Invalid` with a short machine-readable
``reason`` that the Rasa layer maps to a helpful re-prompt. Inputs are treated as hostile:
they may be empty, huge, contain control characters, emoji or Thai; they are truncated
before any real work is done and nothing but ``Invalid`` ever escapes.

The functions are named ``parse_*``: they find a value in free text ("my email is ...",
"flight 204"). The services check values that should already be canonical with the strict
``require_*`` functions of :mod:`tandem.services.common`, which search nothing.

``dateparser`` is slow to import and to initialise, so it is imported lazily inside
:func:`parse_travel_date`, and only when the cheap hand-written rules did not recognise
the date.

The package, by what it parses (import the functions from here, not from the modules):

- :mod:`.cities`: airports (:func:`parse_city`) and routes (:func:`parse_route`);
- :mod:`.dates`: travel dates against the booking window (:func:`parse_travel_date`);
- :mod:`.numbers`: passengers, ratings, the option chosen in a list (:func:`parse_passengers`,
  :func:`parse_rating`, :func:`parse_option`);
- :mod:`.cabin`: economy or business (:func:`parse_cabin`);
- :mod:`.references`: booking references and flight numbers (:func:`parse_booking_ref`,
  :func:`parse_flight_number`);
- :mod:`.contacts`: e-mail addresses and last names (:func:`parse_email`, :func:`parse_last_name`);
- :mod:`._text` (private): the input cap, the cleaning of hostile text, number words.
"""

from ._text import MAX_INPUT_CHARS as MAX_INPUT_CHARS
from .cabin import parse_cabin
from .cities import parse_city, parse_route
from .contacts import parse_email, parse_last_name
from .dates import parse_travel_date
from .numbers import parse_option, parse_passengers, parse_rating
from .references import parse_booking_ref, parse_flight_number

__all__ = [
    "parse_booking_ref",
    "parse_cabin",
    "parse_city",
    "parse_email",
    "parse_flight_number",
    "parse_last_name",
    "parse_option",
    "parse_passengers",
    "parse_rating",
    "parse_route",
    "parse_travel_date",
]
