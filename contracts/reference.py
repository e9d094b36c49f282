"""Reference data seeded into every store: the 33 London local authorities.

Codes are ONS GSS codes. A named party group lets one ISP cover all of them without listing 33
codes, and keeps working when the group is the thing that was signed.
"""

LONDON_AUTHORITIES: dict[str, str] = {
    "E09000001": "City of London",
    "E09000002": "Barking and Dagenham",
    "E09000003": "Barnet",
    "E09000004": "Bexley",
    "E09000005": "Brent",
    "E09000006": "Bromley",
    "E09000007": "Camden",
    "E09000008": "Croydon",
    "E09000009": "Ealing",
    "E09000010": "Enfield",
    "E09000011": "Greenwich",
    "E09000012": "Hackney",
    "E09000013": "Hammersmith and Fulham",
    "E09000014": "Haringey",
    "E09000015": "Harrow",
    "E09000016": "Havering",
    "E09000017": "Hillingdon",
    "E09000018": "Hounslow",
    "E09000019": "Islington",
    "E09000020": "Kensington and Chelsea",
    "E09000021": "Kingston upon Thames",
    "E09000022": "Lambeth",
    "E09000023": "Lewisham",
    "E09000024": "Merton",
    "E09000025": "Newham",
    "E09000026": "Redbridge",
    "E09000027": "Richmond upon Thames",
    "E09000028": "Southwark",
    "E09000029": "Sutton",
    "E09000030": "Tower Hamlets",
    "E09000031": "Waltham Forest",
    "E09000032": "Wandsworth",
    "E09000033": "Westminster",
}

PARTY_GROUPS: dict[str, frozenset[str]] = {
    "group:london-authorities": frozenset(LONDON_AUTHORITIES),
}


def expand_parties(parties: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Organisation codes named by an ISP's parties, with groups replaced by their members."""
    codes: set[str] = set()
    for party in parties:
        codes |= PARTY_GROUPS.get(party, {party})
    return frozenset(codes)
