module.exports = require('./leaks').globalSetup;
