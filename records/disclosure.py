"""What a page is about to show of a patient, described for the audit row.

A neutral module: the door (`records.access`) records it and the portal's selectors build it, and neither needs to
import the other for it.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shown:
    """What a page is about to show, for the audit row."""

    sections: list[str] = field(default_factory=list)
    partners: list[str] = field(default_factory=list)
    withheld: str = ""
    # The one item of the record the page opens (a document), as its source names it ("DocumentReference/<id>"):
    # the audit row's query and reason. Empty for a page of the whole record.
    item: str = ""
