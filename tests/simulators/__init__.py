"""Tests of the vendor simulators, the framework and the plant model."""
