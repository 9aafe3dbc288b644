module.exports = require('./leaks').globalTeardown;
