"""Human-written strings of the synthetic contact centre.

Real contact-centre data is hostile to careless CSV and spreadsheet handling, so these pools mix
plain values with double quotes, commas, embedded newlines (LF and CRLF), non-Latin scripts,
emoji (including a skin-tone modifier sequence) and leading "=" formulas. Lookup entity names, wrap-up
notes, email subjects, participant names and attributes all draw from here.
"""

from __future__ import annotations

DIVISIONS: tuple[tuple[str, str], ...] = (  # (name, description); the first one is the home division
    ("Home", "The organisation's default division"),
    ("Customer Care", "Inbound service queues"),
    ("Sales & Retention", "Sales, upsell and save desks"),
    ('Back Office, "EMEA"', "Email, international and\nback-office work"),
)

# (name, division index, media types served, description, routing weights): the weights say how often a
# queue is the first queue of an inbound contact, the target of a transfer, or the queue of an
# agent-dialled call (0 = never).
QUEUES: tuple[tuple[str, int, frozenset[str], str, float, float, float], ...] = (
    ("General Support", 1, frozenset({"voice", "callback"}), "First line for all callers", 5, 1, 0),
    (
        "Billing\nDisputes",
        1,
        frozenset({"voice", "chat", "email"}),
        "Invoices, refunds, chargebacks",
        3,
        2,
        0,
    ),
    ('Sales, "Premium"', 2, frozenset({"voice", "chat", "message"}), "Premium plan sales", 2, 1, 1),
    ("=Escalations", 1, frozenset({"voice"}), "Tier 2, transfers only", 0, 5, 0),
    ("Soporte técnico", 1, frozenset({"voice", "chat", "message"}), "Spanish-language support", 1.5, 0.5, 0),
    (
        "山田チーム サポート",
        3,
        frozenset({"voice", "message", "email"}),
        "Japanese-language support",
        0.8,
        0.3,
        0,
    ),
    ("Ελληνικά Υποστήριξη", 3, frozenset({"voice", "email"}), "Greek-language support", 0.6, 0.3, 0),
    ("الدعم العربي", 3, frozenset({"voice", "chat"}), "Arabic-language support", 0.6, 0.3, 0),
    ("VIP 🎧", 2, frozenset({"voice", "callback"}), "Named accounts, callbacks within 1 h", 1, 1, 0),
    (
        "Retention",
        2,
        frozenset({"voice", "callback", "chat", "message"}),
        "Cancellation save desk",
        1.5,
        2,
        1,
    ),
    ("Email Back Office", 3, frozenset({"email"}), "Long-running email cases", 1.5, 0, 0),
    ("Outbound Sales", 2, frozenset({"voice"}), "Agent-dialled sales calls", 0, 0, 4),
)

WRAPUP_CODES: tuple[str, ...] = (
    "Resolved",
    "Resolved - first contact",
    "Billing question",
    "Payment taken",
    "Refund issued",
    "Technical issue",
    "Escalated to Tier 2",
    "Callback promised",
    "No answer",
    "Wrong number",
    'Sale, "Premium" plan',
    "=Complaint+Refund",
    "Follow-up\r\nrequired",
    "苦情対応",
    "Ακύρωση συνδρομής",
    "إلغاء الاشتراك",
    "👍🏽 Happy customer",
    "Customer hung up",
    "Transferred",
    "Address change",
)

# Fixed staff names that break naive CSV writers and spreadsheets; the rest are generated.
HOSTILE_STAFF = (
    "山田 太郎",
    "Ελένη Παπαδοπούλου",
    "محمد العلي",
    "O'Brien, Seán",
    'Zoë "Zee" Müller',
    "=Kim+Lee",
    "DJ 🎧 Rivera",
    "Ana 👍🏽 Silva",
)
FIRST_NAMES = (
    "James", "Maria", "Chen", "Aisha", "Liam", "Sofia", "Noah", "Fatima", "Lucas", "Yuki", "Olivia",
    "Mateo", "Priya", "Ethan", "Amara", "Lukas", "Chloe", "Diego", "Hana", "Oscar", "Inés", "Jonas",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Wang", "Okafor", "Johnson", "Rossi", "Kim", "Nguyen", "Dubois", "Patel",
    "Kowalski", "Hansen", "Ivanova", "Costa", "Tanaka", "Brown", "Lopez", "Schmidt", "Haddad",
)  # fmt: skip
DEPARTMENTS = ("Customer Care", "Sales", 'Quality, "QA"', "Operations")

CUSTOMER_NAMES = (
    "Alex Morgan", "Sam Taylor", "Jordan Lee", "Chris Walker", "Pat Kelly", "Robin Fischer",
    'Jane "JJ" Doe', "Smith, John", "山田 花子", "Γιώργος Νικολάου", "فاطمة الزهراء", "Łukasz Żółć",
    "Bob 🎧", "Mia 👍🏽", "=HYPERLINK(\"http://x\")", "Anne-Marie\nO'Neil",
)  # fmt: skip

WRAPUP_NOTES = (
    "customer asked for balance",
    "Sent refund form",
    'Customer said "cancel it, now"',
    "Needs follow-up, see ticket 4471",
    "Line one\nline two",
    "Windows line end\r\nsecond line",
    "=SUM(A1:A9)",
    "山田様より折り返し希望",
    "Πελάτης ευχαριστημένος 👍🏽",
    "العميل راضٍ عن الحل",
    "🎧 audio issues, retried twice",
    "Promised callback tomorrow 9am",
)

EMAIL_SUBJECTS = (
    "Question about my invoice",
    'Re: Invoice #1234, "urgent"',
    "Fwd: =cmd|' /C calc'!A0",
    "Refund\nrequest",
    "Change of address\r\nand phone",
    "注文について",
    "Ερώτηση για τον λογαριασμό",
    "استفسار عن الفاتورة",
    "Thanks 👍🏽",
    "Order 55821 not delivered",
)

INTENTS = ("billing", "technical", "sales", "cancel", "address_change", "other")
SEGMENTS = ("Gold", "Silver", "Bronze", 'Platinum, "Legacy"')
LANGUAGES = ("en-US", "es-US", "ja-JP", "el-GR", "ar-SA")
ATTRIBUTE_FREE_TEXT = (
    "Caller verified via PIN",
    'said "I want to speak to a manager"',
    "multi\nline\nvalue",
    "crlf\r\nvalue",
    "=1+2",
    "紹介コード: さくら",
    "Ελληνικό κείμενο",
    "نص عربي",
    "🎧👍🏽",
    "comma, separated, values",
)

EVALUATION_FORMS = ("Voice Quality Form v3", 'Digital QA, "Chat & Email"')
SURVEY_FORMS = ("Post-contact NPS", "Satisfacción del cliente")
IVR_FLOWS = ("Main IVR", 'Billing IVR - "After Hours"', "Soporte IVR")
IN_QUEUE_FLOW = "Default in-queue, hold music"
# Flow outcomes (Architect) the org's flows report, by flow: each IVR flow of IVR_FLOWS in turn, then the
# agentless campaigns' message flows. The first outcome of an IVR flow is the caller's identification,
# the second the self-service the flow offers.
IVR_FLOW_OUTCOMES: tuple[tuple[str, ...], ...] = (
    ("Caller authenticated", "Balance enquiry self-served", "Reason for call captured"),
    ("Caller authenticated", 'Payment taken, "card on file"'),
    ("Cliente autenticado", "Consulta de saldo resuelta"),
)
IVR_FLOW_LANGUAGES = ("en-us", "en-us", "es-us")  # each IVR flow's starting language
CAMPAIGN_FLOW_OUTCOMES = ("Reminder confirmed by the customer",)
# Milestones the IVR flows count (nFlowMilestone), in the order a caller reaches them
IVR_MILESTONES = ("Greeting played", "Menu choice made", "Account found")


def long_payload(length: int) -> str:
    """A CRM-style blob of `length` characters: participant data longer than the 1024-character limit."""
    unit = '{"note": "Kunde, \\"VIP\\"", "名前": "山田", "tags": ["a", "b"]}\n'
    return (unit * (length // len(unit) + 1))[:length]
