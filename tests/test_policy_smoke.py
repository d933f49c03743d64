from consent.policy import Action, decide, visible_patients


def test_gp_sees_registered_patient_and_colleague_elsewhere_does_not(cast):
    assert decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed
    assert not decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD).allowed
    assert set(visible_patients(cast.gp_ada)) == {cast.patient_a, cast.patient_sensitive}
