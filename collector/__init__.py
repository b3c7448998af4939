"""solar-collector: vendor solar clouds into InfluxDB, inside every vendor's limits."""

__version__ = "0.1.0"
