"""Word lists for invented people and places in Cambridgeshire and Peterborough.

Town names and postcode districts are real so the demo reads as local; house numbers, street names paired with
towns and the inward half of every postcode are made up, so an address may match a real one only by chance.
Phone numbers come from the ranges Ofcom keeps for drama and never allocates, so none can ring a real person.
"""

# Packed several to a line: one name a line would make these lists hundreds of lines long.
# fmt: off
FEMALE_GIVEN_NAMES: tuple[str, ...] = (
    "Abigail", "Alice", "Amelia", "Anne", "Beatrice", "Brenda", "Carol", "Charlotte", "Chloe", "Daisy",
    "Deborah", "Eleanor", "Elizabeth", "Ellie", "Emily", "Evelyn", "Florence", "Freya", "Georgina", "Grace",
    "Hannah", "Harriet", "Isla", "Jacqueline", "Jane", "Jessica", "Joan", "Julie", "Karen", "Katherine",
    "Lily", "Linda", "Lucy", "Margaret", "Maria", "Mary", "Megan", "Mia", "Olivia", "Patricia",
    "Pauline", "Phoebe", "Rachel", "Rosie", "Ruby", "Sandra", "Sarah", "Sophie", "Susan", "Valerie",
)

MALE_GIVEN_NAMES: tuple[str, ...] = (
    "Adam", "Alan", "Albert", "Alfie", "Andrew", "Arthur", "Barry", "Brian", "Callum", "Charlie",
    "Christopher", "Colin", "Daniel", "David", "Derek", "Edward", "Ethan", "Frank", "Frederick", "George",
    "Graham", "Harry", "Henry", "Ian", "Jack", "James", "John", "Joseph", "Keith", "Kevin",
    "Leo", "Liam", "Malcolm", "Mark", "Matthew", "Michael", "Nigel", "Noah", "Oliver", "Oscar",
    "Patrick", "Peter", "Raymond", "Richard", "Robert", "Samuel", "Stephen", "Terence", "Thomas", "William",
)

FAMILY_NAMES: tuple[str, ...] = (
    "Abbott", "Allen", "Appleby", "Bailey", "Baker", "Barker", "Bennett", "Bishop", "Bradshaw", "Brooks",
    "Burton", "Carter", "Chapman", "Clarke", "Coleman", "Cooper", "Cox", "Dawson", "Dixon", "Ellis",
    "Fenwick", "Fisher", "Fletcher", "Foster", "Gardner", "Gibson", "Goodwin", "Graves", "Hall", "Harding",
    "Harper", "Hayes", "Holland", "Hughes", "Hunt", "Jarvis", "Kemp", "Knight", "Lambert", "Lawrence",
    "Marsh", "Mason", "Mills", "Morgan", "Newman", "Norris", "Osborne", "Page", "Palmer", "Parsons",
    "Pearce", "Porter", "Reeve", "Reynolds", "Rowe", "Saunders", "Sharp", "Shepherd", "Slater", "Spencer",
    "Stevens", "Sutton", "Thorne", "Tucker", "Turner", "Wade", "Walsh", "Warren", "Webb", "Wells",
    "Whitaker", "Wilkins", "Woods", "Wright", "Yates",
)

# fmt: on

STREET_NAMES: tuple[str, ...] = (
    "Mill Lane",
    "Church Street",
    "Station Road",
    "High Street",
    "Orchard Close",
    "Willow Way",
    "Meadow Road",
    "The Green",
    "Chapel Lane",
    "Fen Road",
    "Bridge Street",
    "Newmarket Road",
    "Victoria Road",
    "Park Avenue",
    "Queens Crescent",
    "Riverside",
    "School Lane",
    "Manor Drive",
    "Abbey Walk",
    "Sedge Close",
    "Lode Way",
    "Dyke Lane",
    "Eel Street",
    "Windmill Rise",
    "Granary Court",
    "Wheatfield Drive",
    "Osier Road",
    "Heron Close",
    "Kingfisher Way",
    "Poplar Avenue",
)

# Area key → (town, postcode district) pairs. Practices draw their patients from one or two areas.
AREAS: dict[str, tuple[tuple[str, str], ...]] = {
    "cambridge": (
        ("Cambridge", "CB1"),
        ("Cambridge", "CB2"),
        ("Cambridge", "CB4"),
        ("Cambridge", "CB5"),
        ("Histon", "CB24"),
        ("Cottenham", "CB24"),
        ("Sawston", "CB22"),
        ("Girton", "CB3"),
    ),
    "fenland": (
        ("March", "PE15"),
        ("Wisbech", "PE13"),
        ("Chatteris", "PE16"),
        ("Whittlesey", "PE7"),
    ),
    "east-cambridgeshire": (
        ("Ely", "CB7"),
        ("Soham", "CB7"),
        ("Littleport", "CB6"),
    ),
    "peterborough": (
        ("Peterborough", "PE1"),
        ("Peterborough", "PE2"),
        ("Peterborough", "PE3"),
        ("Peterborough", "PE4"),
        ("Hampton", "PE7"),
    ),
    "huntingdonshire": (
        ("Huntingdon", "PE29"),
        ("St Ives", "PE27"),
        ("St Neots", "PE19"),
        ("Ramsey", "PE26"),
        ("Cambourne", "CB23"),
    ),
}

# Inward postcodes never use these letters in their last two places, so leaving them out keeps the shape right.
POSTCODE_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

# Ofcom's drama ranges: 07700 900000 to 900999 (mobile) and 01632 960000 to 960999 (geographic, no real area).
MOBILE_PREFIX = "07700 900"
LANDLINE_PREFIX = "01632 960"

TITLES_FEMALE: tuple[str, ...] = ("Mrs", "Ms", "Miss")
TITLES_MALE: tuple[str, ...] = ("Mr",)

# fmt: off
# Named professionals who appear in care teams and as authors; invented like everyone else.
CLINICIAN_NAMES: tuple[str, ...] = (
    "Dr Nadia Hollis", "Dr Owen Pryce", "Dr Ruth Kendal", "Dr Samir Dutta", "Dr Imogen Frost",
    "Dr Tobias Greer", "Dr Helen Marchant", "Dr Victor Ashdown",
)
NURSE_NAMES: tuple[str, ...] = (
    "Claire Holt", "Jenny Markham", "Priya Soames", "Wendy Lowther", "Tom Easby", "Gemma Rudd",
)
SOCIAL_WORKER_NAMES: tuple[str, ...] = ("Martin Cresswell", "Aisha Penrose", "Lorna Drewett", "Kieran Budd")
CARE_COORDINATOR_NAMES: tuple[str, ...] = ("Fiona Ledger", "Marcus Tate", "Joanne Whitlock", "Ravi Chandler")
# fmt: on
