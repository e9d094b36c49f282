"""Child keys: one key per identifier however it is written; nothing to guess without the key."""

import pytest

from service.domain.child_keys import ChildKeys, IdentifierError, identifier_from

KEYS = ChildKeys(b"k" * 32)
AMARA = {
    "given_name": "Amara",
    "family_name": "Okafor",
    "date_of_birth": "2016-05-14",
    "nhs_number": "9434765919",
    "unique_pupil_number": "H801200001001",
}


def _key(**params) -> str:
    return KEYS.key(identifier_from(params))


def test_a_case_gets_one_key_per_identifier_it_carries():
    keys = KEYS.of_case(AMARA)
    assert len(keys) == 3
    assert _key(nhs_number="943 476 5919") in keys
    assert _key(unique_pupil_number="h801200001001") in keys
    assert _key(given_name=" amara ", family_name="OKAFOR", date_of_birth="2016-05-14") in keys


def test_a_case_with_only_name_and_birth_date_gets_one_key():
    keys = KEYS.of_case({k: AMARA[k] for k in ("given_name", "family_name", "date_of_birth")})
    assert keys == [_key(given_name="Amara", family_name="Okafor", date_of_birth="2016-05-14")]


def test_keys_hold_no_identifier_and_depend_on_the_secret():
    key = _key(nhs_number="9434765919")
    assert "9434765919" not in key and len(key) == 64
    assert ChildKeys(b"other" * 8).of_case(AMARA) != KEYS.of_case(AMARA)
    assert _key(nhs_number="9434765918") != key


@pytest.mark.parametrize(
    "params, message",
    [
        ({"nhs_number": "9434765919", "unique_pupil_number": "H801200001001"}, "one way"),
        ({"given_name": "Amara", "family_name": "Okafor"}, "go together"),
        ({"nhs_number": "12345"}, "10 digits"),
        ({"unique_pupil_number": "123"}, "unique pupil number"),
        ({"given_name": "A", "family_name": "B", "date_of_birth": "14/05/2016"}, "YYYY-MM-DD"),
    ],
)
def test_a_search_that_does_not_name_one_child_one_way_is_refused(params, message):
    with pytest.raises(IdentifierError, match=message):
        identifier_from(params)


def test_a_search_naming_no_child_has_no_identifier():
    assert identifier_from({"case_reference": "CAF-1"}) is None
