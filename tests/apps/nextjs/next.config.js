// `/` answers with the serving worker's pid (the tests tell workers apart by it); the pages
// live at /home and /about.
module.exports = {
  async rewrites() {
    return [{ source: '/', destination: '/api/pid' }];
  },
};
