"""The supervision policy (督办规则): the tracker's light, progress and reporting rules."""
