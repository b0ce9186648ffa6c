// Package sdktest tests deciders and views given/when/then style:
//
//	sdktest.Given(t, account.Decider, account.Opened{Owner: "ann"}).
//		When(account.Deposit{Amount: 10}).
//		Then(account.Deposited{Amount: 10})
//
// Failures print what was expected, what happened and a diff. The helpers take
// testing.TB and run no I/O: a decider is pure, so its tests need no store.
package sdktest
