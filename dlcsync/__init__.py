"""dlcsync: keeps US 10DLC number-to-campaign links consistent with the carrier."""
