"""SolaX Cloud, Sunvec Connect and the SolaX EV charger (token APIs)."""
