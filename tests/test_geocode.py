"""Offline geocoding (asrtools.data.geocode): real place names and zip codes -> lat/lon, and what is not placed.

Reference coordinates are GeoNames' (for cities) and the `zipcodes` package's (for zips), as
published: Edinburgh 55.95206 N 3.19648 W, Perth (Scotland) 56.39522 N 3.43139 W, Perth
(Western Australia) 31.95224 S 115.8614 E, Cambridge MA 02139 at 42.3647 N 71.1042 W.
"""
from __future__ import annotations

import pytest

from asrtools.data.geocode import place_speaker, population_centre

TOL = 1e-3  # degrees


def _at(placement, lat, lon, tol=TOL):
    assert placement.placed, placement
    assert placement.lat == pytest.approx(lat, abs=tol) and placement.lon == pytest.approx(lon, abs=tol), placement


def test_city_zip_and_ambiguous_city_names():
    edinburgh = place_speaker({"region": "Edinburgh"})
    _at(edinburgh, 55.95206, -3.19648)
    assert (edinburgh.how, edinburgh.detail) == ("city", "Edinburgh, GB")
    zip_code = place_speaker({"zip": "02139", "city": "Paris"})  # the zip wins over the city
    _at(zip_code, 42.3647, -71.1042)
    assert zip_code.how == "zip" and "Cambridge, MA" in zip_code.detail
    _at(place_speaker({"zip": "02139-4307"}), 42.3647, -71.1042)  # ZIP+4
    # several cities are called Perth: the most populous, unless the speaker's country says otherwise
    _at(place_speaker({"city": "Perth"}), -31.95224, 115.8614)
    _at(place_speaker({"city": "Perth", "country": "United Kingdom"}), 56.39522, -3.43139)
    _at(place_speaker({"region": "perth", "country": "UK"}), 56.39522, -3.43139)  # case and alias


def test_states_and_countries_are_placed_at_their_population_centre():
    massachusetts = place_speaker({"state": "MA"})
    assert massachusetts.how == "state"
    assert 41.2 < massachusetts.lat < 42.9 and -73.5 < massachusetts.lon < -69.9  # inside the state
    assert place_speaker({"region": "Ohio"}).how == "state"
    india = place_speaker({"country": "India"})
    assert india.how == "country" and 8 < india.lat < 30 and 70 < india.lon < 88
    scotland = place_speaker({"region": "Scotland"})
    assert scotland.how == "country" and 55 < scotland.lat < 58 and -5 < scotland.lon < -2
    # in a region field a two-letter code is neither Massachusetts nor Morocco
    assert not place_speaker({"region": "MA"}).placed


def test_population_centre_is_a_mean_on_the_sphere():
    lat, lon = population_centre([{"latitude": 0.0, "longitude": 179.0, "population": 1},
                                  {"latitude": 0.0, "longitude": -179.0, "population": 1}])
    assert lat == pytest.approx(0.0, abs=1e-9) and abs(lon) == pytest.approx(180.0, abs=1e-9)
    lat, lon = population_centre([{"latitude": 10.0, "longitude": 20.0, "population": 3},
                                  {"latitude": 10.0, "longitude": 20.0, "population": 1}])
    assert (lat, lon) == (pytest.approx(10.0), pytest.approx(20.0))


def test_what_is_not_placed_says_why():
    southern = place_speaker({"region": "Southern England", "accent": "English"})
    assert not southern.placed and southern.how == "unplaced"
    assert "region 'Southern England'" in southern.detail
    assert place_speaker({"accent": "Indian"}).detail == "no lat/lon, zip, city, region, state or country given"
    postcode = place_speaker({"zip": "EH1 1YZ"})  # a UK postcode is no US zip code
    assert not postcode.placed and "zip 'EH1 1YZ'" in postcode.detail
    bad = place_speaker({"zip": "00000"})
    assert not bad.placed and "00000" in bad.detail
    given = place_speaker({"lat": "51.5", "lon": "-0.12", "city": "Edinburgh"})  # the corpus's own lat/lon win
    assert (given.lat, given.lon, given.how) == (51.5, -0.12, "corpus")
