// Package testenv holds test helpers shared by the project's tests.
package testenv
