"""HL7 v2 ADT messages from hospital patient-administration systems, as FHIR R4 Patient and Encounter resources;
and REF referral messages, as Patient and ServiceRequest resources.

Messages are read and parsed by `hl7v2_messages` (python-hl7, tolerant of the flaws real feeds have); what a message means is
decided here, and the resources made of it are validated, matched and written like any FHIR a partner sends.

What always holds:
- a file is split into messages at each MSH segment, whatever its line endings (CR, LF or CRLF) and with or
  without MLLP framing; every message becomes resources or exactly one rejection, never nothing;
- every resource made of a message keeps the message as its raw text, so a quarantined one can be replayed by
  the same feed, and carries the message time (MSH-7) as meta.lastUpdated, so an older message never overwrites
  what a newer one said;
- the patient is the PID segment's NHS number (PID-3 repetition with assigning authority NHS or identifier type
  NH); nothing is matched on a local hospital number;
- an Encounter's id is stable for the visit, from the sending facility (MSH-4) and the visit number (PV1-19), so
  each event of the visit updates one entry: A01/A04 start it, A02 moves it, A03 finishes it, A11 marks it
  entered-in-error and A13 reopens it;
- A08, A28 and A31 carry the patient only; A40 also retires the patient of MRG-1 into the PID patient;
- a REF^I12 (new), I13 (changed) or I14 (cancelled) referral becomes one ServiceRequest, its id stable for the
  referral (sending facility and RF1-6, the originating referral id), so each message about it updates one entry;
  it is performed by the referred-to provider (the PRD segment of role RT), named by the ODS code among PRD-7's
  identifiers (type ODS, or an ODS-shaped id of no type) and by the team among them of type TEAM;
- timestamps without an offset are UK local time (Europe/London), as NHS systems send them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from records.ingest.fhir import CONFIDENTIALITY_SYSTEM, JsonObject, fhir_id, parse_datetime
from records.ingest.formats.hl7v2_messages import Field, Message, decode, part, split_messages, whole
from records.ingest.items import Item, Reader, Rejection, ResourceUnit, unreadable
from records.ingest.matching import NHS_NUMBER_SYSTEM, well_formed
from records.models import Feed, QuarantinedRecord
from records.nhs_number import normalise

Reason = QuarantinedRecord.Reason

SUFFIXES = frozenset({".hl7", ".txt"})
HANDLED_EVENTS = ("A01", "A02", "A03", "A04", "A08", "A11", "A13", "A28", "A31", "A40")
ENCOUNTER_EVENTS = frozenset({"A01", "A02", "A03", "A04", "A11", "A13"})
REFERRAL_EVENTS = ("I12", "I13", "I14")
# RF1-1 referral status (HL7 table 0283) -> ServiceRequest.status; a cancelled referral (I14) is revoked whatever
# its RF1-1 says.
_REFERRAL_STATUSES = {"A": "active", "P": "active", "R": "revoked", "E": "revoked"}
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PATIENT_CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0004"
HOSPITAL_SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0069"
LOCAL_TIME = ZoneInfo("Europe/London")
_NAMESPACE = uuid.UUID("5b0f3c55-3d4f-4b8e-9a51-2f0a8d8f6c11")

# PV1-2 patient class -> v3 ActCode encounter class, and the words shown for the encounter.
_CLASSES = {
    "I": ("IMP", "inpatient encounter", "Inpatient admission"),
    "E": ("EMER", "emergency", "Emergency department attendance"),
    "O": ("AMB", "ambulatory", "Outpatient attendance"),
    "P": ("PRENC", "pre-admission", "Pre-admission"),
    "R": ("AMB", "ambulatory", "Outpatient attendance"),
    "B": ("IMP", "inpatient encounter", "Inpatient admission"),
}
_SEXES = {"M": "male", "1": "male", "F": "female", "2": "female", "O": "other", "A": "other", "I": "other"}
_TIMESTAMP = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,4})?)?([+-]\d{4})?$")


class _Problem(Exception):
    """A message that parses but cannot be made into valid resources: the reason and a sentence saying why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def reader(feed: Feed) -> Reader:
    """The reader of this feed's HL7 v2 files."""
    return lambda location, data: _read(feed, location, data)


def _read(feed: Feed, location: str, data: bytes) -> Iterator[Item]:
    text = decode(location, data)
    if isinstance(text, Rejection):
        yield text
        return
    if not text.strip("\x0b\x1c\r\n \t"):
        yield unreadable(location, "The file is empty.", text)
        return
    for line, message in split_messages(text):
        where = f"{location}:{line}"
        if line == 0:
            yield unreadable(
                location, "Text before the first MSH segment is not part of any HL7 v2 message.", message
            )
            continue
        yield from _message_items(feed, where, message)


def _message_items(feed: Feed, where: str, text: str) -> Iterator[Item]:
    try:
        message = Message(text)
    except Exception as error:  # the parser's errors share no base class; each one means unreadable
        yield unreadable(
            where, f"The message cannot be parsed as HL7 v2: {type(error).__name__}: {error}.", text
        )
        return
    kind = message.value("MSH", 9).upper()
    event = (message.value("MSH", 9, 2) or message.value("EVN", 1)).upper()
    control_id = message.value("MSH", 10)
    named = well_formed(_nhs_number(message.field("PID", 3)) or _nhs_number(message.field("PID", 2)))
    handled = (kind == "ADT" and event in HANDLED_EVENTS) or (kind == "REF" and event in REFERRAL_EVENTS)
    if not handled:
        yield Rejection(
            where,
            Reason.UNSUPPORTED_TYPE,
            f"{kind or '?'}^{event or '?'} messages are not taken by this feed: it takes ADT "
            f"{', '.join(HANDLED_EVENTS)} and REF {', '.join(REFERRAL_EVENTS)}.",
            text,
            resource_type=f"{kind}^{event}"[:64],
            source_id=control_id,
            nhs_number=named,
        )
        return
    try:
        yield from _Conversion(feed, where, text, message, event).units()
    except _Problem as problem:
        yield Rejection(
            where,
            problem.reason,
            f"{kind}^{event} message {control_id or '(no MSH-10)'}: {problem.detail}",
            text,
            resource_type=f"{kind}^{event}",
            source_id=control_id,
            nhs_number=named,
        )


def _nhs_number(field: Field) -> str:
    """The NHS number among CX repetitions: assigning authority NHS, or identifier type NH."""
    for repetition in field:
        authority, kind = part(repetition, 4).upper(), part(repetition, 5).upper()
        if authority == "NHS" or kind == "NH":
            return normalise(part(repetition, 1))
    return ""


def hl7_moment(value: str, what: str) -> str:
    """An HL7 TS/DTM as a FHIR date or dateTime; raises _Problem naming the field when it is not one."""
    match = _TIMESTAMP.match(value)
    if match is None:
        raise _Problem(Reason.INVALID_RESOURCE, f"{what} {value!r} is not an HL7 date or time.")
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        if hour is None:
            datetime(int(year), int(month or 1), int(day or 1))
            return "-".join(part for part in (year, month, day) if part)
        if month is None or day is None:
            raise ValueError("a time needs a full date")
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    except ValueError:
        raise _Problem(Reason.INVALID_RESOURCE, f"{what} {value!r} is not a real date or time.") from None
    if offset:
        stamp = moment.isoformat() + f"{offset[:3]}:{offset[3:]}"
        return stamp
    return moment.replace(tzinfo=LOCAL_TIME).isoformat()


def _instant(value: str, what: str) -> str:
    """An HL7 timestamp as an instant: a date alone is taken as its local midnight."""
    moment = hl7_moment(value, what)
    if len(moment) <= 10:
        parsed = parse_datetime(moment)
        if parsed is None:
            raise RuntimeError("invariant: parsed is not None")
        return parsed.replace(tzinfo=LOCAL_TIME).isoformat()
    return moment


@dataclass
class _Conversion:
    feed: Feed
    where: str
    text: str
    message: Message
    event: str
    sent: str = ""  # MSH-7 as an instant: every resource's meta.lastUpdated
    patient_url: str = ""  # the PID patient's fullUrl, which the Encounter and a merge refer to

    def units(self) -> Iterator[ResourceUnit]:
        message = self.message
        if not message.has("PID"):
            raise _Problem(Reason.INVALID_RESOURCE, "the message has no PID segment.")
        sent = message.value("MSH", 7) or message.value("EVN", 2)
        self.sent = _instant(sent, "MSH-7 (message time)") if sent else ""
        self.patient_url = self.full_url("Patient")
        patient = self.patient()
        encounter = self.encounter() if self.event in ENCOUNTER_EVENTS else None
        referral = self.referral() if self.event in REFERRAL_EVENTS else None
        retired = self.retired(patient) if self.event == "A40" else None
        yield self.unit(patient, "Patient", self.patient_url)
        if encounter is not None:
            yield self.unit(encounter, "Encounter", "")
        if referral is not None:
            yield self.unit(referral, "ServiceRequest", "")
        if retired is not None:
            yield self.unit(retired, "Patient replaced", self.full_url("Patient replaced"))

    def full_url(self, part: str) -> str:
        control_id = self.message.value("MSH", 10)
        return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{self.where}|{control_id}|{part}')}"

    def unit(self, resource: JsonObject, part: str, full_url: str) -> ResourceUnit:
        if self.sent:
            resource["meta"] = {**resource.get("meta", {}), "lastUpdated": self.sent}
        return ResourceUnit(
            location=self.where,
            container=self.where,
            full_url=full_url,
            resource_type=str(resource["resourceType"]),
            source_id=str(resource.get("id", "")),
            version_id="",
            last_updated=parse_datetime(self.sent),
            json=resource,
            source_text=self.text,
            part=part,
        )

    def patient(self) -> JsonObject:
        message = self.message
        resource: JsonObject = {"resourceType": "Patient"}
        number = _nhs_number(message.field("PID", 3)) or _nhs_number(message.field("PID", 2))
        if number:
            resource["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": number}]
        name = self.name()
        if name:
            resource["name"] = [name]
        sex = message.value("PID", 8).upper()
        if sex:
            resource["gender"] = _SEXES.get(sex, "unknown")
        born = message.value("PID", 7)
        if born:
            resource["birthDate"] = hl7_moment(born, "PID-7 (date of birth)")[:10]
        address = self.address()
        if address:
            resource["address"] = [address]
        telecom = self.telecom()
        if telecom:
            resource["telecom"] = telecom
        died = message.value("PID", 29)
        if died:
            resource["deceasedDateTime"] = hl7_moment(died, "PID-29 (date of death)")
        elif message.value("PID", 30).upper() == "Y":
            resource["deceasedBoolean"] = True
        practice = self.practice()
        if practice:
            resource["generalPractitioner"] = [{"identifier": {"system": ODS_SYSTEM, "value": practice}}]
        if message.value("PD1", 12).upper() == "Y":
            # PD1-12 protection indicator: the patient's whereabouts are restricted (PDS "R").
            resource["meta"] = {"security": [{"system": CONFIDENTIALITY_SYSTEM, "code": "R"}]}
        return resource

    def name(self) -> JsonObject:
        names = self.message.field("PID", 5)
        if not names:
            return {}
        chosen = next((n for n in names if part(n, 7).upper() == "L"), names[0])
        given = [part for part in (part(chosen, 2), *part(chosen, 3).split()) if part]
        name: JsonObject = {"use": "official"}
        if part(chosen, 1):
            name["family"] = part(chosen, 1)
        if given:
            name["given"] = given
        if part(chosen, 5):
            name["prefix"] = [part(chosen, 5)]
        return name if len(name) > 1 else {}

    def address(self) -> JsonObject:
        addresses = self.message.field("PID", 11)
        if not addresses:
            return {}
        chosen = next((a for a in addresses if part(a, 7).upper() == "H"), addresses[0])
        address: JsonObject = {"use": "home"}
        lines = [line for line in (whole(chosen, 1), part(chosen, 2)) if line]
        if lines:
            address["line"] = lines
        for component, key in ((3, "city"), (4, "district"), (5, "postalCode"), (6, "country")):
            if part(chosen, component):
                address[key] = part(chosen, component)
        return address if len(address) > 1 else {}

    def telecom(self) -> list[JsonObject]:
        found: list[JsonObject] = []
        for repetition in self.message.field("PID", 13):
            use, equipment = part(repetition, 2).upper(), part(repetition, 3).upper()
            if equipment == "INTERNET" or use == "NET":
                if part(repetition, 4):
                    found.append({"system": "email", "value": part(repetition, 4), "use": "home"})
                continue
            number = part(repetition, 1) or " ".join(
                p for p in (part(repetition, 6), part(repetition, 7)) if p
            )
            if number:
                found.append(
                    {"system": "phone", "value": number, "use": "mobile" if equipment == "CP" else "home"}
                )
        return found

    def practice(self) -> str:
        """PD1-3's ODS code: XON.10 (organisation identifier), else XON.3 (ID number), else XON.1 if it is one."""
        for repetition in self.message.field("PD1", 3):
            for component in (10, 3, 1):
                code = part(repetition, component).upper()
                if re.fullmatch(r"[A-Z0-9]{3,6}", code) and (component != 1 or re.search(r"\d", code)):
                    return code
        return ""

    def encounter(self) -> JsonObject:
        message = self.message
        if not message.has("PV1"):
            raise _Problem(Reason.INVALID_RESOURCE, "the message has no PV1 segment, so no visit to record.")
        visit = message.value("PV1", 19)
        if not visit:
            raise _Problem(
                Reason.INVALID_RESOURCE, "PV1-19 (visit number) is empty, so the visit cannot be identified."
            )
        facility = message.value("MSH", 4) or message.value("MSH", 3) or self.feed.organisation.ods_code
        patient_class = message.value("PV1", 2).upper() or ("E" if self.event == "A04" else "I")
        known = _CLASSES.get(patient_class)
        if known is not None:
            code, display, kind = known
            encounter_class = {"system": ACT_CODE_SYSTEM, "code": code, "display": display}
        else:
            encounter_class = {"system": PATIENT_CLASS_SYSTEM, "code": patient_class}
            kind = "Hospital encounter"
        status = {"A03": "finished", "A11": "entered-in-error"}.get(self.event, "in-progress")
        organisation = self.feed.organisation
        resource: JsonObject = {
            "resourceType": "Encounter",
            "id": fhir_id(f"{facility}-{visit}"),
            "identifier": [{"use": "official", "value": visit}],
            "status": status,
            "class": encounter_class,
            "type": [{"text": kind}],
            "subject": {"reference": self.patient_url},
            "serviceProvider": {
                "identifier": {"system": ODS_SYSTEM, "value": organisation.ods_code},
                "display": organisation.name,
            },
        }
        service = message.value("PV1", 10)
        if service:
            resource["serviceType"] = {"coding": [{"system": HOSPITAL_SERVICE_SYSTEM, "code": service}]}
        period = self.period()
        if period:
            resource["period"] = period
        locations = self.locations(status)
        if locations:
            resource["location"] = locations
        return resource

    def period(self) -> JsonObject:
        message = self.message
        happened = message.value("EVN", 6) or message.value("EVN", 2) or message.value("MSH", 7)
        admitted = message.value("PV1", 44)
        period: JsonObject = {}
        if admitted:
            period["start"] = hl7_moment(admitted, "PV1-44 (admit date/time)")
        elif self.event in ("A01", "A04") and happened:
            period["start"] = hl7_moment(happened, "EVN-6 (event time)")
        if self.event == "A03":
            discharged = message.value("PV1", 45)
            if discharged:
                period["end"] = hl7_moment(discharged, "PV1-45 (discharge date/time)")
            elif happened:
                period["end"] = hl7_moment(happened, "EVN-6 (event time)")
        return period

    def locations(self, status: str) -> list[JsonObject]:
        found = []
        prior = self.place(6)
        if prior and self.event == "A02":
            found.append({"location": {"display": prior}, "status": "completed"})
        current = self.place(3)
        if current:
            found.append(
                {
                    "location": {"display": current},
                    "status": "completed" if status == "finished" else "active",
                }
            )
        return found

    def place(self, number: int) -> str:
        places = self.message.field("PV1", number)
        if not places:
            return ""
        # PL: point of care, room, bed, facility; shown most specific last, as ward staff say it.
        parts = [part(places[0], component) for component in (4, 1, 2, 3)]
        return ", ".join(part for part in parts if part)

    def referral(self) -> JsonObject:
        message = self.message
        if not message.has("RF1"):
            raise _Problem(Reason.INVALID_RESOURCE, "a referral message needs an RF1 segment.")
        referral_id = message.value("RF1", 6) or message.value("MSH", 10)
        if not referral_id:
            raise _Problem(
                Reason.INVALID_RESOURCE,
                "RF1-6 (originating referral id) and MSH-10 are empty, so the referral cannot be identified.",
            )
        facility = message.value("MSH", 4) or message.value("MSH", 3) or self.feed.organisation.ods_code
        status = _REFERRAL_STATUSES.get(message.value("RF1", 1).upper(), "active")
        if self.event == "I14":
            status = "revoked"
        resource: JsonObject = {
            "resourceType": "ServiceRequest",
            "id": fhir_id(f"{facility}-REF-{referral_id}"),
            "identifier": [{"use": "official", "value": referral_id}],
            "status": status,
            "intent": "order",
            "subject": {"reference": self.patient_url},
        }
        concept = " ".join(
            words
            for words in (message.value("RF1", 3, 2) or message.value("RF1", 3), message.value("RF1", 10, 2))
            if words
        )
        resource["code"] = {"text": concept or "Referral"}
        effective = message.value("RF1", 7)
        if effective:
            resource["authoredOn"] = hl7_moment(effective, "RF1-7 (effective date)")
        performer = self.provider("RT")
        if performer:
            resource["performer"] = performer
        requester = self.provider("RP")
        if requester:
            resource["requester"] = requester[0]
        return resource

    def provider(self, role: str) -> list[JsonObject]:
        """The PRD segment of this role (RT referred-to, RP referring) as references: its organisation by ODS
        code and its team by the identifier of type TEAM, or only its name when it carries neither."""
        for fields in self.message.segments.get("PRD", []):

            def field(number: int, fields: list[Field] = fields) -> Field:
                return fields[number] if number < len(fields) else []

            roles = field(1)
            if not roles or part(roles[0], 1).upper() != role:
                continue
            references: list[JsonObject] = []
            for identifier in field(7):
                value, kind = part(identifier, 1), part(identifier, 2).upper()
                if value and kind == "TEAM":
                    references.append({"type": "CareTeam", "identifier": {"value": value}})
                elif value and (
                    kind == "ODS" or (not kind and re.fullmatch(r"[A-Z0-9]{3,6}", value.upper()))
                ):
                    references.append(
                        {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": value.upper()}}
                    )
            names = field(2)
            name = " ".join(p for p in (part(names[0], 2), part(names[0], 1)) if p) if names else ""
            if not references and name:
                references.append({"display": name})
            return references
        return []

    def retired(self, survivor: JsonObject) -> JsonObject | None:
        """The patient of MRG-1, as a Patient replaced by the PID patient; None for a merge of local records only."""
        message = self.message
        if not message.has("MRG"):
            raise _Problem(
                Reason.INVALID_RESOURCE, "an A40 merge needs an MRG segment naming the prior patient."
            )
        prior = _nhs_number(message.field("MRG", 1))
        if not prior:
            raise _Problem(
                Reason.NO_NHS_NUMBER,
                "MRG-1 names no NHS number (assigning authority NHS or type NH); only merges of NHS numbers "
                "change the shared record.",
            )
        survivor_identifiers = survivor.get("identifier", [])
        survivor_number = survivor_identifiers[0]["value"] if survivor_identifiers else ""
        if prior == survivor_number:
            # The hospital merged two of its own records of one NHS number: nothing changes for us.
            return None
        other: JsonObject = {"reference": self.patient_url}
        if survivor_number:
            other["identifier"] = {"system": NHS_NUMBER_SYSTEM, "value": survivor_number}
        return {
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": prior}],
            "active": False,
            "link": [{"other": other, "type": "replaced-by"}],
        }
